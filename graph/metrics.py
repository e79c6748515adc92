"""Run metrics read from history by any process: latency, outcomes, routing, errors, LLM cost."""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from graph.context import Context
from graph.history import SqliteHistory, add_usage
from graph.services import level_of_budget, start_of_day

DEFAULT_WINDOW_S = 24 * 3600.0
"""The window `summary` covers when no `since` is given: the last 24 hours."""

FALLBACK_ALERT_RATE = 0.10
"""Share of runs planned by the rule planner after the LLM failed, above which `summary` alerts."""

SLOWEST = 5
"""How many of the slowest requests `summary` lists."""

NO_VALUE = "none"
"""The key under which runs without a complexity are counted (cache hits and rejected requests
skip the router)."""


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_since(text: str, now: float) -> float:
    """Return the epoch seconds a `--since` value means: a duration back from `now`, or a time.

    A duration is a number and a unit, `s`, `m`, `h`, `d` or `w` (`30m`, `1h`, `7d`, `1.5h`).
    Anything else is read as an ISO 8601 date or date-time (`2025-06-01`, `2025-06-01T09:30`,
    `2025-06-01 09:30+02:00`); one without a UTC offset is taken as UTC, like the daily budget.

    Raises:
        ValueError: `text` is neither, with a message saying what is accepted.
    """
    value = text.strip()
    if match := _DURATION.fullmatch(value.lower()):
        since = now - float(match[1]) * _UNITS[match[2]]
    else:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"cannot read {text!r} as a time: use a duration such as 30m, 1h or 7d, "
                "or an ISO date or date-time such as 2025-06-01 or 2025-06-01T09:30"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        since = moment.timestamp()
    # Before 1970 (or not a number at all): no run can be in such a window.
    if not math.isfinite(since) or since < 0:
        raise ValueError(f"{text!r} is before 1970")
    return since


def percentile(values: Iterable[float], p: float) -> float | None:
    """Return the `p`th percentile of `values` by the nearest-rank method, or None if empty.

    Nearest rank: the smallest value with at least `p`% of the values at or below it, i.e. the
    value of rank `ceil(p / 100 * n)` (1-based) in sorted order. It is always one of the values,
    never an interpolation between two, so a p99 is a latency some request really had.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _percentiles(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in (50, 95, 99)}


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _failure_rates(groups: Iterable[tuple[str | None, bool]]) -> dict[str, dict[str, Any]]:
    """Return `{key: {"runs", "failed", "rate"}}` from `(key, failed)` pairs, worst rate first."""
    runs: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for key, fail in groups:
        if key is None:
            continue
        runs[key] += 1
        failed[key] += fail
    table = {k: {"runs": n, "failed": failed[k], "rate": failed[k] / n} for k, n in runs.items()}
    return dict(sorted(table.items(), key=lambda kv: (-kv[1]["rate"], -kv[1]["runs"], kv[0])))


def _numbers(value: Any) -> dict[str, float]:
    """Return the numeric entries of a mapping; anything else is dropped."""
    if not isinstance(value, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in value.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    }


def _clean(run: dict[str, Any]) -> dict[str, Any] | None:
    """Return a history row with every field metrics read in its expected type, or None.

    Rows come from files older versions or other processes wrote, and may be damaged: one bad
    row must cost only itself, never the whole summary.
    """
    latency = run.get("latency_ms")
    if not isinstance(latency, int | float) or not math.isfinite(latency):
        return None
    usage = run.get("usage")
    steps = run.get("steps")
    hit = run.get("cache_hit")
    cost = run.get("cost_usd")
    return run | {
        "status": str(run.get("status")),
        "prompt": str(run.get("prompt")),
        "cost_usd": float(cost)
        if isinstance(cost, int | float) and not isinstance(cost, bool) and math.isfinite(cost)
        else 0.0,
        "node_ms": _numbers(run.get("node_ms")),
        "usage": {str(m): _numbers(u) for m, u in usage.items()}
        if isinstance(usage, dict)
        else None,
        "steps": [s for s in steps if isinstance(s, dict)] if isinstance(steps, list) else [],
        "cache_hit": hit if isinstance(hit, dict) else None,
        "llm_attempts": run["llm_attempts"] if isinstance(run.get("llm_attempts"), int) else 0,
    }


def _tools(run: dict[str, Any]) -> tuple[set[str], str | None]:
    """Return the tools a run's steps called, and the tool of its failed step (None if none)."""
    steps = [s for s in run.get("steps") or [] if isinstance(s, dict)]
    used = {str(s.get("tool_name")) for s in steps if s.get("tool_name")}
    failed = next((str(s.get("tool_name")) for s in steps if not s.get("ok", True)), None)
    return used, failed


def _errors(runs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Count error types: of failed runs, and of completed runs the rule planner took over."""
    failed: Counter[str] = Counter()
    recovered: Counter[str] = Counter()
    for run in runs:
        if run["status"] != "completed":
            failed[run.get("error_type") or "other"] += 1
        elif run.get("plan_source") == "fallback" and run.get("error_type"):
            recovered[run["error_type"]] += 1
    table = {t: {"failed": failed[t], "recovered": recovered[t]} for t in failed | recovered}
    return dict(sorted(table.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


def _alerts(summary: dict[str, Any], objective_ms: float) -> list[str]:
    alerts: list[str] = []
    # Measured over the runs the LLM was meant to plan: cache hits and pattern-first runs
    # would dilute it, and a run the rules could not rescue either is a fallback too.
    fallback = summary["rates"]["llm_fallback"]
    if fallback is not None and fallback > FALLBACK_ALERT_RATE:
        alerts.append(
            f"fallback rate {fallback:.1%} of LLM-routed runs is above "
            f"{FALLBACK_ALERT_RATE:.0%}: the LLM path is failing (see the error types)"
        )
    p95 = summary["latency_ms"]["p95"]
    if p95 is not None and p95 > objective_ms:
        alerts.append(
            f"p95 latency {p95:,.1f} ms is above the objective of {objective_ms:,g} ms "
            "(CRANE_P95_OBJECTIVE_MS)"
        )
    return alerts


def summary(
    context: Context,
    *,
    user_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    """Return the metrics of the runs recorded in a time window, for one user or everyone.

    Everything is computed from history, so it survives restarts and every process reading the
    same data directory agrees. Runs come from one indexed query for the window and are
    aggregated here. Latency percentiles use the nearest-rank method (see `percentile`). Rates
    are fractions of the window's runs. An empty window gives zero counts, empty tables and
    None for every percentile, rate and mean.

    Args:
        context: the runtime settings (data directory, budget, p95 objective).
        user_id: only this user's runs; None for everyone's. The budget and the breakers are
            shared by every user and are never filtered.
        since: start of the window, seconds since the epoch (inclusive); default 24 h before
            `until`.
        until: end of the window, seconds since the epoch (exclusive); default now.

    Returns:
        A JSON-serializable dict with `window`, `runs`, `latency_ms` and `node_ms` (p50, p95,
        p99), `rates`, `cache_hits_by_level`, `llm_attempts`, `errors_by_type`,
        `usage_by_model`, `tokens`, `cost_usd`, `budget` (today, UTC), `breakers`, `routing`,
        `failure_rate` (by tool, complexity and model), `slowest`, `p95_objective_ms` and
        `alerts` (see the README's Metrics section).
    """
    until = time.time() if until is None else until
    since = until - DEFAULT_WINDOW_S if since is None else since
    history = SqliteHistory(context.home_path / "history.sqlite")
    runs = [r for r in map(_clean, history.window(since, until, user_id)) if r is not None]
    n = len(runs)

    node_ms: dict[str, list[float]] = {}
    usage: dict[str, dict[str, float]] = {}
    for run in runs:
        for node, ms in (run.get("node_ms") or {}).items():
            node_ms.setdefault(node, []).append(float(ms))
        if isinstance(run.get("usage"), dict):  # a run recorded without usage stores JSON null
            add_usage(usage, run["usage"])
    sources = Counter(run.get("plan_source") or NO_VALUE for run in runs)
    levels = Counter(
        str((run.get("cache_hit") or {}).get("level"))
        for run in runs
        if run.get("plan_source") == "cache"
    )
    completed = sum(run["status"] == "completed" for run in runs)
    llm_runs = [r for r in runs if r["llm_attempts"] > 0 or r.get("fallback_reason")]
    attempts = [int(run.get("llm_attempts") or 0) for run in runs]
    tools = [(run, *_tools(run)) for run in runs]
    spent_today = history.cost_since(start_of_day())

    result: dict[str, Any] = {
        "window": {"since": since, "until": until, "user_id": user_id},
        "runs": n,
        "latency_ms": _percentiles([float(run["latency_ms"]) for run in runs]),
        "node_ms": {node: {"runs": len(v), **_percentiles(v)} for node, v in node_ms.items()},
        "rates": {
            "success": _rate(completed, n),
            "fallback": _rate(sources["fallback"], n),
            # of the runs that went to the LLM or were denied it: how often its path gave up
            "llm_fallback": _rate(
                sum(bool(r.get("fallback_reason")) for r in llm_runs), len(llm_runs)
            ),
            "cache_hit": _rate(sources["cache"], n),
            "pattern_first": _rate(sources["pattern"], n),
        },
        "cache_hits_by_level": dict(levels.most_common()),
        "llm_attempts": {"mean": _rate(sum(attempts), n), "max": max(attempts, default=None)},
        "errors_by_type": _errors(runs),
        "usage_by_model": usage,
        "tokens": sum(int(u.get("tokens", 0)) for u in usage.values()),
        "cost_usd": round(sum(float(run.get("cost_usd") or 0) for run in runs), 10),
        "budget": {
            "usd": context.budget_usd,
            "spent_usd": spent_today,
            "level": level_of_budget(spent_today, context.budget_usd),
        },
        "breakers": history.breaker_states(),
        "routing": {
            "by_complexity": dict(
                Counter(run.get("complexity") or NO_VALUE for run in runs).most_common()
            ),
            "by_plan_source": dict(sources.most_common()),
        },
        "failure_rate": {
            # a run counts once per tool it called, as failed for the tool of its failed step
            "by_tool": _failure_rates(
                (tool, tool == failed) for run, used, failed in tools for tool in sorted(used)
            ),
            "by_complexity": _failure_rates(
                (run.get("complexity") or NO_VALUE, run["status"] != "completed") for run in runs
            ),
            "by_model": _failure_rates(
                (run.get("model"), run["status"] != "completed") for run in runs
            ),
        },
        "slowest": [
            {k: run[k] for k in ("prompt", "latency_ms", "run_id", "status")}
            for run in sorted(runs, key=lambda r: -float(r["latency_ms"]))[:SLOWEST]
        ],
        "p95_objective_ms": context.p95_objective_ms,
    }
    result["alerts"] = _alerts(result, context.p95_objective_ms)
    return result


def llm_summary(context: Context) -> dict[str, Any]:
    """Return today's (UTC) LLM usage per model, the budget, and each breaker's last state.

    The LLM part of `summary` over the UTC day so far. Breakers live in the process that runs
    the graph; what is shown is the last transition that process recorded. An `open` breaker
    whose `at + cooldown_s` is past lets its next request through as a trial.
    """
    today = summary(context, since=start_of_day())
    kept = ("usage_by_model", "cost_usd", "tokens", "budget", "breakers")
    return {"since": today["window"]["since"], **{k: today[k] for k in kept}}
