"""The `crane` command: run a request, list todos, show LLM cost and health, manage the plan cache."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any


def _format_output(output: Any) -> str:
    if isinstance(output, dict) and "todos" in output:
        todos = output["todos"]
        if not todos:
            return "no todos"
        return f"{len(todos)} todo(s)\n" + "\n".join(f"       {_format_todo(t)}" for t in todos)
    if isinstance(output, dict) and {"id", "text"} <= set(output):
        return _format_todo(output)
    return json.dumps(output, ensure_ascii=False)


def _format_todo(todo: dict[str, Any]) -> str:
    mark = "x" if todo.get("completed") else " "
    return f"[{mark}] #{todo.get('id')} {todo.get('text')}"


_SOURCES = {
    "cache": "the plan cache (an earlier successful run)",
    "llm": "the LLM planner",
    "pattern": "the rule-based planner",
    "fallback": "the rule-based planner (fallback after the LLM failed)",
}


def render(response: dict[str, Any]) -> str:
    """Return a response as text for people: the plan, each step's result, the answer or the error."""
    lines: list[str] = []
    if response.get("plan"):
        source = _SOURCES.get(str(response.get("plan_source")), str(response.get("plan_source")))
        if response.get("cache_hit"):
            source = f"the plan cache ({response['cache_hit']['reason']})"
        model = f", model {response['model']}" if response.get("model") else ""
        lines.append(f"Plan from {source}{model}: {response['plan'].get('final_goal', '')}")
    for step in response.get("steps") or []:
        args = ", ".join(f"{k}={v!r}" for k, v in step["tool_input"].items() if v is not None)
        result = _format_output(step["output"]) if step["ok"] else f"FAILED: {step['error']}"
        lines.append(f"  {step['step_number']}. {step['tool_name']}({args}) -> {result}")
    if response.get("status") == "completed":
        lines.append(f"Answer: {_format_output(response.get('answer'))}")
    else:
        lines.append(f"Error: {response.get('error')}")
    if response.get("fallback_reason"):
        lines.append(f"(LLM not used: {response['fallback_reason']})")
    if response.get("tokens"):
        lines.append(f"({response['tokens']:,} LLM tokens, ${response.get('cost_usd') or 0:.6f})")
    return "\n".join(lines)


def _cmd_run(args: argparse.Namespace) -> int:
    from graph import build_graph
    from graph.state import InputState

    app = build_graph()
    graph_input = InputState(prompt=args.prompt, user_id=args.user)
    # Live progress only for a person at a terminal: scripts (--json, pipes) get exactly the
    # output they always had. Asked of stdout itself, not of rich, which FORCE_COLOR can fool.
    if args.json or not sys.stdout.isatty():
        response = app.invoke(graph_input)["response"]
    else:
        from rich.console import Console

        from graph.progress import run_with_progress

        response = run_with_progress(app, graph_input, Console())
    print(json.dumps(response, ensure_ascii=False, indent=2) if args.json else render(response))
    return 0 if response["status"] == "completed" else 1


def _cmd_todos(args: argparse.Namespace) -> int:
    from graph.context import Context
    from tools.todo_store import TodoError, TodoStore

    store = TodoStore(Context.from_env().home_path / "todos.sqlite")
    try:
        todos = store.list(args.user)
    except TodoError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(todos, ensure_ascii=False, indent=2) if args.json else _format_output(todos))
    return 0


def render_stats(summary: dict[str, Any], *, failures: bool = False) -> str:
    """Return a metrics summary (`graph.metrics.summary`) as text for people.

    Args:
        summary: what `summary` returned.
        failures: also show the error types, the failure rates by tool, complexity and model,
            and the slowest requests.
    """
    from datetime import UTC, datetime

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f}"

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.1%}"

    def counts(table: dict[str, int]) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in table.items()) or "-"

    window = summary["window"]
    span = " to ".join(
        datetime.fromtimestamp(window[k], UTC).strftime("%Y-%m-%d %H:%M")
        for k in ("since", "until")
    )
    who = f"user {window['user_id']!r}" if window["user_id"] is not None else "all users"
    latency, rates = summary["latency_ms"], summary["rates"]
    lines = [
        f"Runs {span} UTC, {who}: {summary['runs']:,}",
        f"Latency (ms): p50 {ms(latency['p50'])}, p95 {ms(latency['p95'])}, "
        f"p99 {ms(latency['p99'])} (p95 objective {summary['p95_objective_ms']:,g})",
    ]
    if summary["node_ms"]:
        lines.append("Per node (ms): p50 / p95 / p99")
        for node, t in summary["node_ms"].items():
            lines.append(
                f"  {node:<18} {ms(t['p50'])} / {ms(t['p95'])} / {ms(t['p99'])}"
                f"  ({t['runs']:,} runs)"
            )
    levels, errors = counts(summary["cache_hits_by_level"]), summary["errors_by_type"]
    attempts = summary["llm_attempts"]
    mean = "-" if attempts["mean"] is None else f"{attempts['mean']:.2f}"
    most = "-" if attempts["max"] is None else attempts["max"]
    lines += [
        f"Success {pct(rates['success'])}, fallback {pct(rates['fallback'])}, cache hits "
        f"{pct(rates['cache_hit'])} ({levels}), pattern first {pct(rates['pattern_first'])}",
        f"LLM fallback {pct(rates['llm_fallback'])} of the runs routed to the LLM; "
        f"LLM attempts per run: mean {mean}, max {most}",
        f"Routing: by complexity {counts(summary['routing']['by_complexity'])}; "
        f"by plan source {counts(summary['routing']['by_plan_source'])}",
        f"LLM: {summary['tokens']:,} tokens, ${summary['cost_usd']:.6f}",
    ]
    for model, use in sorted(summary["usage_by_model"].items()):
        lines.append(
            f"  {model}: {int(use.get('calls', 0))} calls, {int(use.get('tokens', 0)):,} tokens, "
            f"${use.get('cost_usd', 0):.6f}"
        )
    budget = summary["budget"]
    if budget["usd"] is not None:
        lines.append(
            f"Budget today (UTC): ${budget['spent_usd']:.6f} of ${budget['usd']:.2f} spent "
            f"({budget['level']})"
        )
    lines.append("Circuit breakers (last recorded state):" if summary["breakers"] else "")
    for b in summary["breakers"]:
        detail = f", cooldown {b['cooldown_s']:g} s" if b["state"] != "closed" else ""
        reason = f", last failure {b['last_failure']}" if b.get("last_failure") else ""
        lines.append(f"  {b['model']} at {b['endpoint']}: {b['state']}{detail}{reason}")
    if failures:
        tables: list[tuple[str, list[str]]] = [
            (
                "Errors by type (failed runs / recovered by the rule planner):",
                [f"{k}: {n['failed']:,} / {n['recovered']:,}" for k, n in errors.items()],
            )
        ]
        for title, key in (
            ("tool", "by_tool"),
            ("complexity", "by_complexity"),
            ("model", "by_model"),
        ):
            tables.append(
                (
                    f"Failure rate by {title}:",
                    [
                        f"{name}: {f['failed']:,} of {f['runs']:,} runs ({pct(f['rate'])})"
                        for name, f in summary["failure_rate"][key].items()
                    ],
                )
            )
        tables.append(
            (
                "Slowest requests:",
                [
                    f"{ms(r['latency_ms'])} ms, {r['status']}, run {r['run_id']}: "
                    f"{r['prompt'][:60]!r}"
                    for r in summary["slowest"]
                ],
            )
        )
        for title, rows in tables:
            lines += [title, *(f"  {row}" for row in rows or ["(none)"])]
    lines += [f"ALERT: {alert}" for alert in summary["alerts"]]
    return "\n".join(line for line in lines if line)


def _cmd_stats(args: argparse.Namespace) -> int:
    import time

    from graph.context import Context
    from graph.metrics import parse_since, summary

    now = time.time()
    try:
        since = parse_since(args.since, now) if args.since is not None else None
        if since is not None and since >= now:
            raise ValueError(f"{args.since!r} is in the future: no run is recorded there yet")
    except ValueError as exc:
        print(f"Error: --since: {exc}", file=sys.stderr)
        return 2
    result = summary(Context.from_env(), user_id=args.user, since=since, until=now)
    print(
        json.dumps(result, indent=2) if args.json else render_stats(result, failures=args.failures)
    )
    return 0


def render_cache_stats(stats: dict[str, Any]) -> str:
    """Return the plan cache's and the examples' statistics as text for people."""
    lines: list[str] = []
    for title, part in (("Plan cache", stats["plans"]), ("Dynamic examples", stats["examples"])):
        lines.append(
            f"{title}: {part.get('entries', 0):,} entries, {part.get('hits', 0):,} hits, "
            f"{part.get('bytes_on_disk', 0) / 1e6:.1f} MB on disk"
        )
    lines.append(
        f"Embeddings: {stats['space']}; semantic threshold {stats['threshold']:.3f}; "
        f"TTL {stats['ttl_s'] / 86400:g} days; at most {stats['max_entries']:,} entries per user"
    )
    return "\n".join(lines)


def _cache_stores() -> tuple[Any, Any]:
    from graph.context import Context
    from graph.services import open_plan_stores

    context = Context.from_env()
    return open_plan_stores(context, context.home_path)


def _cmd_cache_stats(args: argparse.Namespace) -> int:
    from graph.context import Context

    context = Context.from_env()
    cache, examples = _cache_stores()
    stats = {
        "plans": cache.store.stats(args.user),
        "examples": examples.store.stats(args.user),
        "space": cache.vectors.space,
        "threshold": context.cache_threshold,
        "ttl_s": context.cache_ttl_s,
        "max_entries": context.cache_max_entries,
    }
    print(json.dumps(stats, indent=2, default=str) if args.json else render_cache_stats(stats))
    return 0


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    cache, examples = _cache_stores()
    removed = cache.store.clear(args.user)
    who = f" of user {args.user!r}" if args.user else ""
    print(f"Removed {removed:,} cached plan(s){who}.")
    if args.examples:
        print(f"Removed {examples.store.clear(args.user):,} example(s){who}.")
    return 0


def _cmd_history_forget(args: argparse.Namespace) -> int:
    import time

    from graph.context import Context
    from graph.history import SqliteHistory

    history = SqliteHistory(Context.from_env().home_path / "history.sqlite")
    run = history.get(args.run_id)
    # A run served from the cache ran the plan of the run that cached it: that one goes too.
    source = (run or {}).get("cache_hit") or {}
    bad = [args.run_id, *([source["run_id"]] if source.get("run_id") else [])]
    cache, examples = _cache_stores()
    plans = cache.store.delete_runs(bad)
    taught = examples.forget(bad)
    if run is None and not plans and not taught:
        print(f"Error: no run {args.run_id!r} in history.", file=sys.stderr)
        return 1
    now = time.time()
    for run_id in bad:
        history.forget(run_id, now)
    also = f" and the run {bad[1]} its plan came from" if len(bad) > 1 else ""
    print(
        f"Run {args.run_id}{also} marked as bad: {plans} cached plan(s) and {taught} "
        "example(s) removed; the plan will not be reused or shown to the LLM planner."
    )
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import dataclasses
    import tempfile
    from pathlib import Path

    from graph.eval_dataset import load_dataset
    from graph.evaluation import VARIANTS, evaluate, rescore
    from graph.models import llm_configured

    if not llm_configured() and not args.rescore:
        print(
            "Error: crane eval measures an LLM's plans: set OPENAI_API_KEY (and OPENAI_BASE_URL "
            "for a local or other OpenAI-compatible endpoint).",
            file=sys.stderr,
        )
        return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        print(f"Error: --variants takes some of: {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    try:
        items = load_dataset(Path(args.dataset) if args.dataset else None)
    except (OSError, ValueError) as exc:
        print(f"Error: the dataset cannot be used: {exc}", file=sys.stderr)
        return 2
    if args.category:
        items = [i for i in items if i.category in set(args.category)]
    if args.limit is not None and 0 < args.limit < len(items):
        # Evenly spaced rather than the first N, so a short run keeps the categories' mix.
        step = len(items) / args.limit
        items = [items[int(k * step)] for k in range(args.limit)]
    if not items:
        print("Error: no request of the dataset matches the selection.", file=sys.stderr)
        return 2
    if args.rescore:
        report = rescore(items, Path(args.rescore))
        if not report["variants"]:
            print(f"Error: {args.rescore} holds no evaluation runs.", file=sys.stderr)
            return 2
        return _report_eval(args, report, f"{report['items']} requests, scored again")
    out = Path(args.out) if args.out else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "runs.jsonl").write_text("")

    def progress(variant: str, result: Any) -> None:
        verdict = "ok" if result.llm_correct else f"WRONG ({result.reason or 'not the LLM'})"
        print(
            f"[{variant}] {result.id}: {verdict}, {result.plan_source}, {result.latency_ms:.0f} ms",
            file=sys.stderr,
            flush=True,
        )
        if out is not None:  # every run as it ends: a long evaluation that stops keeps its runs
            with (out / "runs.jsonl").open("a") as f:
                row = {"variant": variant, **dataclasses.asdict(result)}
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    with tempfile.TemporaryDirectory(prefix="crane-eval-") as tmp:
        home = Path(args.home) if args.home else Path(tmp)
        try:
            report = evaluate(items, variants, home, progress=progress)
        except ValueError as exc:
            print(f"Error: {exc}", file=sys.stderr)
            return 2
    models = sorted(set(report["settings"]["models"].values()))
    report["endpoint"] = os.environ.get("OPENAI_BASE_URL") or "OpenAI"
    title = f"{len(items)} requests, model {', '.join(models)}, {report['seconds']} s"
    return _report_eval(args, report, title)


def _report_eval(args: argparse.Namespace, report: dict[str, Any], title: str) -> int:
    from pathlib import Path

    from graph.evaluation import markdown

    table = markdown(report, title=title)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        (out / "eval.md").write_text(table)
    print(json.dumps(report["variants"], indent=2) if args.json else table)
    return 0


def make_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `crane` command."""
    parser = argparse.ArgumentParser(
        prog="crane",
        description="Turn a request into a validated plan of tool calls, run it and record it. "
        "Offline by default; set OPENAI_API_KEY (and OPENAI_BASE_URL) to plan with an LLM.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="run one request",
        description="Run one request. At a terminal, the steps are shown live as they run.",
    )
    run.add_argument("prompt", help='the request, e.g. "what is 8%% of 50"')
    run.add_argument("--json", action="store_true", help="print the response dict as JSON")
    run.add_argument("--user", default="default", help="whose todos, history and cache to use")
    run.set_defaults(func=_cmd_run)
    todos = sub.add_parser("todos", help="list your todos", description="List your todos.")
    todos.add_argument("--json", action="store_true", help="print JSON")
    todos.add_argument("--user", default="default", help="whose todos to list")
    todos.set_defaults(func=_cmd_todos)
    stats = sub.add_parser(
        "stats",
        help="latency, outcomes, routing, errors, LLM cost, budget and circuit breakers",
        description="Show metrics of the recorded runs (default: the last 24 hours, all users): "
        "latency percentiles overall and per node, success, fallback, cache-hit and "
        "pattern-first rates, routing, LLM tokens and cost per model, the budget, the last "
        "recorded state of each model's circuit breaker, and ALERT lines when the fallback "
        "rate is above 10%% or p95 latency above CRANE_P95_OBJECTIVE_MS.",
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
    stats.add_argument(
        "--failures",
        action="store_true",
        help="also show error types, failure rates by tool, complexity and model, and the "
        "slowest requests",
    )
    stats.add_argument(
        "--since",
        default=None,
        help="start of the window: a duration back from now (30m, 1h, 7d) or an ISO date or "
        "date-time, UTC unless it has an offset (default: 24h)",
    )
    stats.add_argument("--user", default=None, help="only this user's runs (default: everyone's)")
    stats.set_defaults(func=_cmd_stats)
    cache = sub.add_parser(
        "cache",
        help="plan cache statistics, or clear it",
        description="Inspect or clear the plan cache (and the dynamic few-shot examples).",
    )
    cache_sub = cache.add_subparsers(dest="cache_command", required=True)
    cache_stats = cache_sub.add_parser("stats", help="entries, hits, size, settings")
    cache_stats.add_argument("--json", action="store_true", help="print JSON")
    cache_stats.add_argument("--user", default=None, help="only this user's entries")
    cache_stats.set_defaults(func=_cmd_cache_stats)
    cache_clear = cache_sub.add_parser("clear", help="remove cached plans")
    cache_clear.add_argument("--user", default=None, help="only this user's (default: everyone's)")
    cache_clear.add_argument(
        "--examples", action="store_true", help="also remove the dynamic few-shot examples"
    )
    cache_clear.set_defaults(func=_cmd_cache_clear)
    history = sub.add_parser(
        "history", help="manage the run history", description="Manage the run history."
    )
    history_sub = history.add_subparsers(dest="history_command", required=True)
    forget = history_sub.add_parser(
        "forget",
        help="mark a run as bad: its plan is no longer reused or shown as an example",
        description="Mark a run as bad: its cached plan and its dynamic example are removed.",
    )
    forget.add_argument("run_id", help="the run's id (the response's run_id)")
    forget.set_defaults(func=_cmd_history_forget)
    evaluation = sub.add_parser(
        "eval",
        help="score the LLM's plans on a labeled dataset, per prompt variant",
        description="Run the labeled requests (the bundled dataset, or --dataset) through the "
        "graph against the configured endpoint (OPENAI_BASE_URL, CRANE_MODEL_*), once per "
        "prompt variant, with the cache and pattern-first routing off, and print plan "
        "validity, execution success, answer accuracy, fallback rate, latency, tokens and cost "
        "side by side. The runs use their own data directory, never CRANE_HOME.",
    )
    evaluation.add_argument(
        "--variants",
        default="basic,few-shot,dynamic,few-shot+dynamic",
        help="comma-separated prompt variants (default: all four)",
    )
    evaluation.add_argument("--dataset", default=None, help="a JSONL dataset of the same format")
    evaluation.add_argument(
        "--limit", type=int, default=None, help="evaluate N requests spread over the dataset"
    )
    evaluation.add_argument(
        "--category", action="append", help="only this category (repeatable): calculator, ..."
    )
    evaluation.add_argument(
        "--out",
        default=None,
        help="also write eval.md, eval.json and, as they end, every run to runs.jsonl here",
    )
    evaluation.add_argument(
        "--home",
        default=None,
        help="keep the runs' data here, an empty or new directory (default: a temporary one)",
    )
    evaluation.add_argument(
        "--rescore",
        default=None,
        metavar="HOME",
        help="call no model: score again the runs an evaluation left in HOME (its --home), "
        "e.g. after a label or scorer change",
    )
    evaluation.add_argument("--json", action="store_true", help="print the summaries as JSON")
    evaluation.set_defaults(func=_cmd_eval)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `crane` command; return its exit code (non-zero for a failed run)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from graph.db import STORAGE_ERRORS
    from graph.errors import ConfigurationError

    args = make_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigurationError as exc:
        print(f"Error: invalid configuration: {exc}", file=sys.stderr)
        return 2
    except STORAGE_ERRORS as exc:
        print(f"Error: the data directory cannot be read or written: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":
    sys.exit(main())
