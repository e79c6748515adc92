"""Metrics math against a history written by hand, the `--since` parser and the node_ms reducer."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graph.context import Context
from graph.history import SqliteHistory
from graph.metrics import llm_summary, parse_since, percentile, summary
from graph.state import FIRST_NODE, add_node_ms

NOW = 1_700_000_000.0
SINCE = NOW - 100


def ok(tool: str) -> dict[str, Any]:
    return {"step_number": 1, "tool_name": tool, "ok": True, "output": 1, "error": None}


def bad(tool: str) -> dict[str, Any]:
    return {"step_number": 2, "tool_name": tool, "ok": False, "output": None, "error": "boom"}


def use(calls: int, inp: int, out: int, cost: float) -> dict[str, float]:
    return {
        "calls": calls,
        "input_tokens": inp,
        "output_tokens": out,
        "tokens": inp + out,
        "cost_usd": cost,
    }


def row(n: int, user: str, status: str, source: str | None, **extra: Any) -> dict[str, Any]:
    """A run created at NOW - 50 + n with latency 10 * n ms; cache_lookup took n ms."""
    run = {
        "run_id": f"r{n}",
        "user_id": user,
        "created_at": NOW - 50 + n,
        "prompt": f"request {n}",
        "status": status,
        "plan_source": source,
        "steps": [],
        "latency_ms": 10.0 * n,
        "path": ["cache_lookup"],
        "node_ms": {"cache_lookup": float(n)},
    }
    return run | extra


RUNS = [
    row(1, "alice", "completed", "pattern", complexity="simple", steps=[ok("calculator")]),
    row(2, "alice", "completed", "cache", cache_hit={"level": "exact"}, steps=[ok("calculator")]),
    row(
        3, "alice", "completed", "cache", cache_hit={"level": "semantic"}, steps=[ok("calculator")]
    ),
    row(
        4,
        "bob",
        "completed",
        "llm",
        complexity="moderate",
        model="fast-model",
        llm_attempts=1,
        usage={"fast-model": use(1, 100, 20, 0.001)},
        cost_usd=0.001,
        tokens=120,
        steps=[ok("todo_store")],
        node_ms={"cache_lookup": 4.0, "llm_planner": 30.0},
    ),
    row(
        5,
        "bob",
        "completed",
        "fallback",
        error_type="timeout",  # the LLM's failure, kept on a completed fallback run
        fallback_reason="fast (fast-model): timeout",
        complexity="moderate",
        model="fast-model",
        llm_attempts=3,
        usage={"fast-model": use(3, 0, 0, 0.0)},
        steps=[ok("todo_store"), ok("calculator")],
        node_ms={"cache_lookup": 5.0, "llm_planner": 90.0},
    ),
    row(
        6,
        "bob",
        "failed",
        "llm",
        error_type="tool_error",
        complexity="complex",
        model="smart-model",
        llm_attempts=2,
        usage={"fast-model": use(1, 100, 20, 0.001), "smart-model": use(1, 200, 40, 0.01)},
        cost_usd=0.011,
        tokens=360,
        steps=[ok("todo_store"), bad("calculator")],
        node_ms={"cache_lookup": 6.0, "llm_planner": 60.0},
    ),
    row(7, "alice", "failed", None, error_type="unsupported_request", complexity="simple"),
    row(
        8,
        "alice",
        "failed",
        "fallback",
        error_type="auth",
        fallback_reason="fast (fast-model): auth",
        complexity="simple",
        model="fast-model",
        llm_attempts=1,
        usage={"fast-model": use(1, 0, 0, 0.0)},
        node_ms={"cache_lookup": 8.0, "llm_planner": 5.0},
    ),
    # outside [SINCE, NOW): before it, and at its (exclusive) end
    row(-100, "alice", "completed", "pattern", latency_ms=1000.0),
    row(50, "bob", "failed", "llm", latency_ms=2000.0),
]


@pytest.fixture
def context(tmp_path: Path) -> Context:
    history = SqliteHistory(tmp_path / "history.sqlite")
    for run in RUNS:
        history.record(run)
    history.record_breaker(
        {
            "at": NOW,
            "endpoint": "http://llm",
            "model": "fast-model",
            "old_state": "closed",
            "state": "open",
            "cooldown_s": 30.0,
            "opened_count": 1,
            "last_failure": "auth",
        }
    )
    return Context.from_env({}, home=str(tmp_path))


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(20, 0, -1)]  # unsorted on purpose
    assert [percentile(values, p) for p in (50, 95, 99, 100)] == [10.0, 19.0, 20.0, 20.0]
    assert percentile(range(1, 101), 95) == 95 and percentile(range(1, 101), 99) == 99
    assert percentile([7.0], 50) == percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0], 0) == 1.0
    assert percentile([], 50) is None


def test_latency_and_node_percentiles(context: Context) -> None:
    s = summary(context, since=SINCE, until=NOW)
    assert s["runs"] == 8
    # latencies 10..80: ranks ceil(4.0) = 4, ceil(7.6) = 8, ceil(7.92) = 8
    assert s["latency_ms"] == {"p50": 40.0, "p95": 80.0, "p99": 80.0}
    assert s["node_ms"]["cache_lookup"] == {"runs": 8, "p50": 4.0, "p95": 8.0, "p99": 8.0}
    # llm_planner ran in four runs: 5, 30, 60, 90 ms
    assert s["node_ms"]["llm_planner"] == {"runs": 4, "p50": 30.0, "p95": 90.0, "p99": 90.0}
    assert list(s["node_ms"]) == ["cache_lookup", "llm_planner"]  # first seen first


def test_rates_routing_and_attempts(context: Context) -> None:
    s = summary(context, since=SINCE, until=NOW)
    assert s["rates"] == {
        "success": 5 / 8,
        "fallback": 2 / 8,
        # r4, r5, r6 and r8 went to the LLM; r5 and r8 fell back
        "llm_fallback": 2 / 4,
        "cache_hit": 2 / 8,
        "pattern_first": 1 / 8,
    }
    assert s["cache_hits_by_level"] == {"exact": 1, "semantic": 1}
    assert s["llm_attempts"] == {"mean": 7 / 8, "max": 3}
    assert s["routing"]["by_complexity"] == {"simple": 3, "moderate": 2, "none": 2, "complex": 1}
    assert s["routing"]["by_plan_source"] == {
        "cache": 2,
        "llm": 2,
        "fallback": 2,
        "pattern": 1,
        "none": 1,
    }


def test_errors_by_type_count_failed_and_recovered_runs(context: Context) -> None:
    s = summary(context, since=SINCE, until=NOW)
    assert s["errors_by_type"] == {
        "auth": {"failed": 1, "recovered": 0},
        "timeout": {"failed": 0, "recovered": 1},
        "tool_error": {"failed": 1, "recovered": 0},
        "unsupported_request": {"failed": 1, "recovered": 0},
    }


def test_tokens_and_cost_per_model(context: Context) -> None:
    s = summary(context, since=SINCE, until=NOW)
    assert s["usage_by_model"] == {
        "fast-model": {
            "calls": 6,
            "input_tokens": 200,
            "output_tokens": 40,
            "tokens": 240,
            "cost_usd": pytest.approx(0.002),
        },
        "smart-model": {
            "calls": 1,
            "input_tokens": 200,
            "output_tokens": 40,
            "tokens": 240,
            "cost_usd": pytest.approx(0.01),
        },
    }
    assert s["tokens"] == 480 and s["cost_usd"] == pytest.approx(0.012)
    # the budget is today's (UTC) spend of everyone: these runs are from 2023
    assert s["budget"] == {"usd": None, "spent_usd": 0.0, "level": "ok"}
    (breaker,) = s["breakers"]
    assert breaker["model"] == "fast-model" and breaker["state"] == "open"


def test_failure_rates_by_tool_complexity_and_model(context: Context) -> None:
    rates = summary(context, since=SINCE, until=NOW)["failure_rate"]
    # calculator ran in runs 1, 2, 3, 5 and 6 and failed in 6; todo_store ran in 4, 5 and 6
    # and never failed (run 6 failed at its calculator step)
    assert rates["by_tool"] == {
        "calculator": {"runs": 5, "failed": 1, "rate": 0.2},
        "todo_store": {"runs": 3, "failed": 0, "rate": 0.0},
    }
    assert rates["by_complexity"] == {
        "complex": {"runs": 1, "failed": 1, "rate": 1.0},
        "simple": {"runs": 3, "failed": 2, "rate": 2 / 3},
        "none": {"runs": 2, "failed": 0, "rate": 0.0},
        "moderate": {"runs": 2, "failed": 0, "rate": 0.0},
    }
    assert rates["by_model"] == {
        "smart-model": {"runs": 1, "failed": 1, "rate": 1.0},
        "fast-model": {"runs": 3, "failed": 1, "rate": 1 / 3},
    }


def test_slowest_requests(context: Context) -> None:
    slowest = summary(context, since=SINCE, until=NOW)["slowest"]
    assert [r["run_id"] for r in slowest] == ["r8", "r7", "r6", "r5", "r4"]
    assert slowest[0] == {
        "prompt": "request 8",
        "latency_ms": 80.0,
        "run_id": "r8",
        "status": "failed",
    }


def test_window_and_user_filtering(context: Context) -> None:
    alice = summary(context, user_id="alice", since=SINCE, until=NOW)
    assert alice["runs"] == 5 and alice["window"]["user_id"] == "alice"
    assert alice["latency_ms"] == {"p50": 30.0, "p95": 80.0, "p99": 80.0}  # 10 20 30 70 80
    assert set(alice["usage_by_model"]) == {"fast-model"}
    assert alice["breakers"] == summary(context, since=SINCE, until=NOW)["breakers"]
    # by default the last 24 h before `until`: the run at NOW - 150 is in, the one at NOW is not
    day = summary(context, until=NOW)
    assert day["runs"] == 9 and day["window"]["since"] == NOW - 24 * 3600
    assert day["latency_ms"]["p99"] == 1000.0
    assert summary(context, since=NOW, until=NOW + 1)["runs"] == 1


def test_an_empty_window_has_no_values_and_no_alerts(context: Context) -> None:
    s = summary(context, since=0.0, until=1.0)
    assert s["runs"] == 0
    assert s["latency_ms"] == {"p50": None, "p95": None, "p99": None}
    assert s["node_ms"] == {} and s["cache_hits_by_level"] == {}
    assert set(s["rates"].values()) == {None}
    assert s["llm_attempts"] == {"mean": None, "max": None}
    assert s["errors_by_type"] == {} and s["usage_by_model"] == {}
    assert s["tokens"] == 0 and s["cost_usd"] == 0
    assert s["failure_rate"] == {"by_tool": {}, "by_complexity": {}, "by_model": {}}
    assert s["slowest"] == [] and s["alerts"] == []


def test_alerts_on_fallback_rate_and_p95_objective(context: Context, tmp_path: Path) -> None:
    (fallback,) = summary(context, since=SINCE, until=NOW)["alerts"]
    assert "fallback rate 50.0% of LLM-routed runs is above 10%" in fallback
    tight = Context.from_env({}, home=str(tmp_path), p95_objective_ms=79.0)
    alerts = summary(tight, since=SINCE, until=NOW)["alerts"]
    assert len(alerts) == 2 and "p95 latency 80.0 ms is above the objective of 79 ms" in alerts[1]
    # runs r1..r3 alone: no fallback, p95 30 ms
    assert summary(context, since=SINCE, until=NOW - 46)["alerts"] == []


def test_llm_summary_is_todays_llm_part(context: Context) -> None:
    today = llm_summary(context)
    assert set(today) == {"since", "usage_by_model", "cost_usd", "tokens", "budget", "breakers"}
    assert today["usage_by_model"] == {} and today["tokens"] == 0  # the runs are from 2023
    assert today["breakers"][0]["state"] == "open"


def test_parse_since() -> None:
    assert parse_since("1h", NOW) == NOW - 3600
    assert parse_since("30m", NOW) == NOW - 1800
    assert parse_since(" 7d ", NOW) == NOW - 7 * 86400
    assert parse_since("1.5h", NOW) == NOW - 5400
    assert parse_since("2025-06-01", NOW) == datetime(2025, 6, 1, tzinfo=UTC).timestamp()
    assert (
        parse_since("2025-06-01T09:30+02:00", NOW)
        == datetime(2025, 6, 1, 7, 30, tzinfo=UTC).timestamp()
    )
    for bad_value in ("yesterday", "1x", "h", "-1h", ""):
        with pytest.raises(ValueError, match="duration such as 30m"):
            parse_since(bad_value, NOW)


def test_node_ms_reducer_sums_and_restarts_at_the_first_node() -> None:
    run = add_node_ms({}, {FIRST_NODE: 1.5})
    run = add_node_ms(run, {"llm_planner": 10.0})
    run = add_node_ms(run, {"llm_planner": 2.25})  # a retry: summed, not replaced
    assert run == {FIRST_NODE: 1.5, "llm_planner": 12.25}
    # the next run on a checkpointed thread starts over
    assert add_node_ms(run, {FIRST_NODE: 3.0}) == {FIRST_NODE: 3.0}


def test_node_ms_round_trips_through_history(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "history.sqlite")
    history.record(row(1, "u", "completed", "pattern", node_ms={"cache_lookup": 1.25}))
    history.record(row(2, "u", "completed", "pattern", node_ms=None))  # as older rows read
    got = history.get("r1")
    assert got is not None and got["node_ms"] == {"cache_lookup": 1.25}
    assert [r["run_id"] for r in history.window(0, NOW, "u")] == ["r1", "r2"]
    assert history.window(0, NOW, "someone else") == []
    s = summary(Context.from_env({}, home=str(tmp_path)), since=0, until=NOW)
    assert s["runs"] == 2 and s["node_ms"] == {
        "cache_lookup": {"runs": 1, "p50": 1.25, "p95": 1.25, "p99": 1.25}
    }


@pytest.mark.parametrize("text", ["1000000w", "1969-12-31", "100000000000d"])
def test_parse_since_refuses_times_no_run_can_have(text: str) -> None:
    with pytest.raises(ValueError):
        parse_since(text, NOW)


def test_damaged_rows_cost_only_themselves(context: Context, tmp_path: Path) -> None:
    """Rows another version or a hand edit wrote: wrong types and unreadable JSON."""
    history = SqliteHistory(tmp_path / "history.sqlite")
    history.record(row(9, "carol", "completed", "pattern", cost_usd="abc", prompt=5))
    history.record(row(10, "carol", "completed", "pattern", latency_ms="slow"))
    history.record(row(11, "carol", "failed", "llm", node_ms=[1, 2], usage={"m": 3}))
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        conn.execute("UPDATE runs SET steps = '{not json' WHERE run_id = 'r11'")
    conn.close()
    s = summary(context, user_id="carol", since=SINCE, until=NOW)
    assert s["runs"] == 2  # r10 has no latency at all: left out
    assert s["cost_usd"] == 0.0 and s["node_ms"]["cache_lookup"]["runs"] == 1
    assert {r["prompt"] for r in s["slowest"]} == {"5", "request 11"}
