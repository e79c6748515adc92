"""Plan-quality evaluation: the labeled requests through the graph, per prompt variant, side by side.

`crane eval` runs every request of the dataset (`graph/data/eval_requests.jsonl`) through the
real graph against the configured endpoint, once per prompt variant, and scores each run's answer
and final todo list (`graph.eval_dataset.score`). It is how a prompt change is A/B-tested.

Every run plans with the LLM: the cache and pattern-first routing are off, and circuit breakers
never open (one slow local model would otherwise send the rest of a variant to the rules). A run
the LLM path gives up on is still answered by the rule planner, as in production, and counted as
a fallback. Each request runs as its own user, so its todo list starts from exactly its setup.

Variants:
- `basic`: the system prompt without the hand-written examples.
- `few-shot`: with them (Crane's system prompt).
- `dynamic`: the basic prompt plus up to `CRANE_EXAMPLES_K` examples retrieved from history.
- `few-shot+dynamic`: both (Crane's default configuration).

The dynamic variants need a history to learn from. A first pass with the few-shot prompt (the
`few-shot` variant itself, reused when it is selected) seeds it, in two folds: the requests are
split in two by a hash of their normalized text (so a request repeated in the dataset stays in
one fold), and each fold is evaluated with the examples the other fold's successful runs left,
so no request ever sees its own earlier plan.

The figures are about what the LLM did: a run the rules rescued is a fallback, not a right
answer of the LLM's (`ItemResult.llm_correct`); what the person got, rescues included, is
reported next to it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from graph.eval_dataset import EvalItem, apply_setup, score
from graph.guard import normalize
from graph.history import SqliteHistory
from graph.metrics import percentile
from tools.todo_store import TodoStore

VARIANTS: dict[str, dict[str, Any]] = {
    "basic": {"few_shot": False, "examples_enabled": False},
    "few-shot": {"few_shot": True, "examples_enabled": False},
    "dynamic": {"few_shot": False, "examples_enabled": True},
    "few-shot+dynamic": {"few_shot": True, "examples_enabled": True},
}
"""Context settings of each prompt variant, in the order reports show them."""

DYNAMIC = frozenset({"dynamic", "few-shot+dynamic"})

# Examples are recorded only with `examples_enabled`; k=0 records them but shows none, so the
# seeding pass plans exactly as the `few-shot` variant does.
_SEED: dict[str, Any] = {"few_shot": True, "examples_enabled": True, "examples_k": 0}

# What every evaluated run shares: the LLM plans everything and is never skipped.
# A daily budget would starve the later variants of one evaluation, so there is none.
_EVAL: dict[str, Any] = {
    "cache_enabled": False,
    "pattern_first": False,
    "breaker_threshold": 1_000_000,
    "budget_usd": None,
}

Progress = Callable[[str, "ItemResult"], None]


@dataclass
class ItemResult:
    """One request's run under one variant: what happened and whether it was right."""

    id: str
    category: str
    request: str
    must_fail: bool
    """The request must end failed (a refusal, or a step that cannot succeed)."""
    correct: bool
    plan_matches: bool | None
    reason: str | None
    status: str | None
    plan_source: str | None
    error_type: str | None
    declined: bool
    """The LLM's last answer was an empty plan: it found no tool for the request."""
    llm_calls: int
    tokens: int
    cost_usd: float
    latency_ms: float
    examples: int
    """Dynamic examples the planner was shown."""
    plan: Any = field(default=None, repr=False)
    answer: Any = field(default=None, repr=False)

    @property
    def llm_correct(self) -> bool:
        """Right because of the LLM: its plan gave the right outcome, or it declined a must-fail.

        A run the rules rescued, or a must-fail request that failed only because the LLM path
        broke (a timeout, garbage output), is not the LLM's doing.
        """
        if not self.correct:
            return False
        if self.must_fail:
            return self.declined or self.plan_source == "llm"
        return self.plan_source == "llm"


def run_item(
    app: Any,
    todos: TodoStore,
    history: SqliteHistory,
    item: EvalItem,
    user_id: str,
) -> ItemResult:
    """Set up `item`'s todos for `user_id`, run its request through `app` and score the run."""
    apply_setup(todos, user_id, item)
    response: dict[str, Any] = {}
    try:
        response = app.invoke({"prompt": item.request, "user_id": user_id})["response"]
    except Exception as exc:  # a run must never raise; if one does, it is a wrong answer
        response = {"status": "failed", "error": f"the run raised {type(exc).__name__}: {exc}"}
    row = history.get(str(response.get("run_id"))) or {}
    return _result(item, response, row, todos.list(user_id)["todos"])


def _result(
    item: EvalItem, response: dict[str, Any], row: dict[str, Any], todos_after: list[dict[str, Any]]
) -> ItemResult:
    """Score a run from its response, its history row and the todo list it left."""
    verdict = score(item, response, todos_after)
    return ItemResult(
        id=item.id,
        category=item.category,
        request=item.request,
        must_fail=item.expect.refused,
        correct=verdict.correct,
        plan_matches=verdict.plan_matches,
        reason=verdict.reason,
        status=response.get("status"),
        plan_source=response.get("plan_source"),
        error_type=response.get("error_type"),
        declined=_declined(row),
        llm_calls=int(row.get("llm_attempts") or 0),
        tokens=int(response.get("tokens") or 0),
        cost_usd=float(response.get("cost_usd") or 0.0),
        latency_ms=float(response.get("latency_ms") or 0.0),
        examples=len(row.get("examples") or []),
        plan=response.get("plan"),
        answer=response.get("answer"),
    )


def rescore(items: Sequence[EvalItem], home: Path) -> dict[str, Any]:
    """Score again the runs an evaluation left in `home`, without calling any model.

    For a changed scorer or label: each variant's run of each item is read back from history
    (its user is `variant/item-id`) with the todo list it left. Items without a run are skipped.

    Returns:
        The report, as `evaluate` returns it (without settings and timing).
    """
    results: dict[str, list[ItemResult]] = {}
    if not (home / "history.sqlite").is_file():  # never create a store where there was none
        return {"variants": {}, "results": {}, "items": 0}
    history = SqliteHistory(home / "history.sqlite")
    todos = TodoStore(home / "todos.sqlite")
    for name in VARIANTS:
        done = []
        for item in items:
            user = f"{name}/{item.id}"
            rows = history.recent(user, limit=1)
            if rows:
                done.append(_result(item, rows[0], rows[0], todos.list(user)["todos"]))
        if done:
            results[name] = done
    return {
        "variants": {name: summarize(rs) for name, rs in results.items()},
        "results": {name: [asdict(r) for r in rs] for name, rs in results.items()},
        "items": len({r.id for rs in results.values() for r in rs}),
    }


def _declined(row: dict[str, Any]) -> bool:
    # Each LLM attempt appends "tier (model): outcome" to the route; the last one decides.
    route = row.get("llm_route")
    return isinstance(route, list) and bool(route) and str(route[-1]).endswith(": declined")


def summarize(results: Sequence[ItemResult]) -> dict[str, Any]:
    """Return one variant's figures, each about what the LLM itself did unless it says otherwise.

    - `plan_validity`: runs whose LLM answered with a plan the validator accepted, or declined.
    - `declined_doable`: requests that should succeed which the LLM declined.
    - `execution_success`: requests that should succeed whose LLM plan ran to completion.
    - `answer_accuracy`: runs right because of the LLM (`ItemResult.llm_correct`).
    - `answer_accuracy_with_fallback`: runs that ended right, the rules' rescues included: what
      the person got.
    - `plan_match`: LLM plans with the expected tools and actions, of those with an expectation.
    - `fallback_rate`: runs the rule planner answered after the LLM path gave up.
    - `tokens_per_successful_plan`, `cost_per_successful_plan_usd`: everything the variant spent
      (failed calls and declines included) over its runs completed with an LLM plan.
    """
    n = len(results)
    if n == 0:
        return {"n": 0}
    doable = [r for r in results if not r.must_fail]
    llm_plans = [r for r in results if r.plan_source == "llm"]
    successful_plans = [r for r in llm_plans if r.status == "completed"]
    latencies = [r.latency_ms for r in results]
    tokens = sum(r.tokens for r in results)
    cost = sum(r.cost_usd for r in results)
    matches = [r.plan_matches for r in llm_plans if r.plan_matches is not None]
    by_category: dict[str, list[ItemResult]] = {}
    for r in results:
        by_category.setdefault(r.category, []).append(r)
    per_plan = len(successful_plans)
    return {
        "n": n,
        "plan_validity": _share(len(llm_plans) + sum(r.declined for r in results), n),
        "declined_doable": _share(sum(r.declined for r in doable), len(doable)),
        "execution_success": _share(
            sum(r.plan_source == "llm" and r.status == "completed" for r in doable), len(doable)
        ),
        "answer_accuracy": _share(sum(r.llm_correct for r in results), n),
        "answer_accuracy_with_fallback": _share(sum(r.correct for r in results), n),
        "plan_match": _share(sum(matches), len(matches)),
        "fallback_rate": _share(sum(r.plan_source == "fallback" for r in results), n),
        "llm_calls_per_run": round(sum(r.llm_calls for r in results) / n, 2),
        "latency_p50_ms": round(percentile(latencies, 50) or 0.0, 1),
        "latency_p95_ms": round(percentile(latencies, 95) or 0.0, 1),
        "tokens": tokens,
        "cost_usd": round(cost, 6),
        "tokens_per_successful_plan": round(tokens / per_plan) if per_plan else None,
        "cost_per_successful_plan_usd": round(cost / per_plan, 6) if per_plan else None,
        "accuracy_by_category": {
            c: _share(sum(r.llm_correct for r in rs), len(rs))
            for c, rs in sorted(by_category.items())
        },
        "wrong": [r.id for r in results if not r.llm_correct],
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


@dataclass
class _Runtime:
    app: Any
    todos: TodoStore
    history: SqliteHistory
    examples: Any


def evaluate(
    items: Sequence[EvalItem],
    variants: Sequence[str],
    home: Path,
    *,
    build: Callable[..., Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run `items` under each variant against the configured endpoint; return the report.

    Args:
        items: The labeled requests.
        variants: Names from `VARIANTS`, in the order to report them.
        home: An empty data directory for the runs (todos, history, examples).
        build: `graph.build_graph` or a stand-in taking the same keyword settings.
        progress: Called with the variant's name and each finished request's result.

    Returns:
        `{"variants": {name: summary}, "results": {name: [item results]}, "settings": ...}`.

    Raises:
        ValueError: an unknown variant, no items, a `home` that is not empty, or dynamic
            variants with `CRANE_EXAMPLES_K=0` (they would be their static twins).
    """
    from graph.context import Context

    variants = list(dict.fromkeys(variants))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    if not items:
        raise ValueError("there is nothing to evaluate: the dataset selection is empty")
    if home.exists() and any(home.iterdir()):
        # Earlier runs' todos and examples would leak into these (a request shown its own plan).
        raise ValueError(f"the evaluation's data directory {home} must be empty")
    context = Context.from_env(home=str(home), **_EVAL)
    if DYNAMIC & set(variants) and context.examples_k == 0:
        raise ValueError("the dynamic variants need CRANE_EXAMPLES_K of at least 1")
    if build is None:
        from graph import build_graph

        build = build_graph
    home.mkdir(parents=True, exist_ok=True)
    folds: tuple[list[EvalItem], list[EvalItem]] = ([], [])
    for item in items:
        folds[fold_of(item.request)].append(item)
    results: dict[str, list[ItemResult]] = {}
    started = time.perf_counter()

    def runtime(settings: dict[str, Any]) -> _Runtime:
        from graph.services import open_plan_stores

        app = build(home=str(home), **_EVAL, **settings)
        context = Context.from_env(home=str(home), **_EVAL, **settings)
        _, examples = open_plan_stores(context, home)
        return _Runtime(
            app, TodoStore(home / "todos.sqlite"), SqliteHistory(home / "history.sqlite"), examples
        )

    def pass_over(name: str, rt: _Runtime, fold: int, teachers: list[str]) -> list[ItemResult]:
        done = []
        for item in folds[fold]:
            user = f"{name}/{item.id}"
            if teachers:
                rt.examples.store.copy_users(teachers, user)
            result = run_item(rt.app, rt.todos, rt.history, item, user)
            if progress is not None:
                progress(name, result)
            done.append(result)
        return done

    seeded: dict[int, list[ItemResult]] = {}
    if "few-shot" in variants or DYNAMIC & set(variants):
        seed = runtime(_SEED)
        label = "few-shot" if "few-shot" in variants else "seed"
        for fold in (0, 1):
            seeded[fold] = pass_over(label, seed, fold, [])
        if "few-shot" in variants:
            results["few-shot"] = _in_order(items, seeded[0] + seeded[1])
    label_of_seed = "few-shot" if "few-shot" in variants else "seed"
    for name in variants:
        if name == "few-shot":
            continue
        rt = runtime(VARIANTS[name])
        done: list[ItemResult] = []
        for fold in (0, 1):
            # Each fold learns from the other fold's seeding runs only.
            teachers = [f"{label_of_seed}/{r.id}" for r in seeded.get(1 - fold, [])]
            done += pass_over(name, rt, fold, teachers if name in DYNAMIC else [])
        results[name] = _in_order(items, done)
    ordered = {name: results[name] for name in variants}
    return {
        "variants": {name: summarize(rs) for name, rs in ordered.items()},
        "results": {name: [asdict(r) for r in rs] for name, rs in ordered.items()},
        "items": len(items),
        "folds": [len(f) for f in folds],
        "settings": {
            "models": {t: context.model_for(t) for t in ("fast", "smart", "reasoning")},
            "examples_k": context.examples_k,
            "llm_timeout_s": context.llm_timeout_s,
            "llm_max_tokens": context.llm_max_tokens,
            "retry_deadline_s": context.retry_deadline_s,
            "embeddings": context.embeddings,
            **_EVAL,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }


def fold_of(request: str) -> int:
    """Return the fold (0 or 1) of a request: by its folded text, so repeats share one.

    A request and its repeat elsewhere in the dataset, even in other case, must not teach each
    other.
    """
    return hashlib.sha256(normalize(request).casefold().encode()).digest()[0] % 2


def _in_order(items: Sequence[EvalItem], results: list[ItemResult]) -> list[ItemResult]:
    by_id = {r.id: r for r in results}
    return [by_id[i.id] for i in items]


def _pct(value: Any) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"


def _usd(value: Any) -> str:
    return "-" if value is None else f"${value:.6f}"


_ROWS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("plan validity", "plan_validity", _pct),
    ("declined a doable request", "declined_doable", _pct),
    ("execution success", "execution_success", _pct),
    ("answer accuracy", "answer_accuracy", _pct),
    ("answer accuracy with the rules' fallback", "answer_accuracy_with_fallback", _pct),
    ("plan match", "plan_match", _pct),
    ("fallback rate", "fallback_rate", _pct),
    ("LLM calls per run", "llm_calls_per_run", _num),
    ("latency p50 (ms)", "latency_p50_ms", _num),
    ("latency p95 (ms)", "latency_p95_ms", _num),
    ("tokens per successful plan", "tokens_per_successful_plan", _num),
    ("cost per successful plan", "cost_per_successful_plan_usd", _usd),
]


def markdown(report: dict[str, Any], *, title: str = "") -> str:
    """Return the report's variants side by side as a markdown table, with accuracy per category."""
    variants = report["variants"]
    names = list(variants)
    lines = [f"**{title}**", ""] if title else []
    lines += ["| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, key, fmt in _ROWS:
        lines.append(f"| {label} | " + " | ".join(fmt(variants[n].get(key)) for n in names) + " |")
    categories = sorted({c for n in names for c in variants[n].get("accuracy_by_category", {})})
    for c in categories:
        cells = [_pct(variants[n].get("accuracy_by_category", {}).get(c)) for n in names]
        lines.append(f"| accuracy: {c} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
