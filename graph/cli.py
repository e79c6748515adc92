"""The `crane` command: run a request, list todos, show LLM cost and health, manage the plan cache."""

from __future__ import annotations

import argparse
import json
import logging
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
    response = app.invoke(InputState(prompt=args.prompt, user_id=args.user))["response"]
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


def render_stats(summary: dict[str, Any]) -> str:
    """Return the LLM summary as text for people."""
    lines = [f"LLM today (UTC): {summary['tokens']:,} tokens, ${summary['cost_usd']:.6f}"]
    for model, use in sorted(summary["usage_by_model"].items()):
        lines.append(
            f"  {model}: {int(use.get('calls', 0))} calls, {int(use.get('tokens', 0)):,} tokens, "
            f"${use.get('cost_usd', 0):.6f}"
        )
    budget = summary["budget"]
    if budget["usd"] is not None:
        lines.append(
            f"Budget: ${budget['spent_usd']:.6f} of ${budget['usd']:.2f} spent ({budget['level']})"
        )
    lines.append("Circuit breakers (last recorded state):" if summary["breakers"] else "")
    for b in summary["breakers"]:
        detail = f", cooldown {b['cooldown_s']:g} s" if b["state"] != "closed" else ""
        reason = f", last failure {b['last_failure']}" if b.get("last_failure") else ""
        lines.append(f"  {b['model']} at {b['endpoint']}: {b['state']}{detail}{reason}")
    return "\n".join(line for line in lines if line)


def _cmd_stats(args: argparse.Namespace) -> int:
    from graph.context import Context
    from graph.metrics import llm_summary

    summary = llm_summary(Context.from_env())
    print(json.dumps(summary, indent=2) if args.json else render_stats(summary))
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


def make_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the `crane` command."""
    parser = argparse.ArgumentParser(
        prog="crane",
        description="Turn a request into a validated plan of tool calls, run it and record it. "
        "Offline by default; set OPENAI_API_KEY (and OPENAI_BASE_URL) to plan with an LLM.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one request", description="Run one request.")
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
        help="today's LLM usage, cost, budget and circuit breakers",
        description="Show today's (UTC) LLM usage and cost per model, the budget, and the last "
        "recorded state of each model's circuit breaker.",
    )
    stats.add_argument("--json", action="store_true", help="print JSON")
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
