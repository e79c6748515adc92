from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from graph.history import SqliteHistory, add_usage

# The `runs` table as the first release created it: no route_reason, fallback_reason,
# llm_route, llm_wait_s or usage.
_ORIGINAL_SCHEMA = """
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    prompt      TEXT NOT NULL,
    status      TEXT NOT NULL,
    plan_source TEXT,
    plan        TEXT,
    steps       TEXT NOT NULL,
    answer      TEXT,
    error       TEXT,
    error_type  TEXT,
    complexity  TEXT,
    tier        TEXT,
    model       TEXT,
    tokens      INTEGER NOT NULL DEFAULT 0,
    cost_usd    REAL NOT NULL DEFAULT 0,
    latency_ms  REAL NOT NULL,
    llm_attempts INTEGER NOT NULL DEFAULT 0,
    path        TEXT NOT NULL
)"""

_NEW_COLUMNS = {"route_reason", "fallback_reason", "llm_route", "llm_wait_s", "usage"}


def _make_old_history(path: Path) -> None:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(_ORIGINAL_SCHEMA)
        conn.execute("CREATE INDEX runs_user_time ON runs (user_id, created_at)")
        conn.execute(
            "INSERT INTO runs (run_id, user_id, created_at, prompt, status, plan_source, plan,"
            " steps, answer, error, error_type, complexity, tier, model, tokens, cost_usd,"
            " latency_ms, llm_attempts, path) VALUES"
            " ('old-1', 'alice', 100.0, 'what is 2+2', 'completed', 'llm', ?, '[]', ?,"
            " NULL, NULL, 'simple', 'fast', 'gpt-4o-mini', 42, 0.25, 12.5, 1, ?)",
            [json.dumps({"steps": [], "final_goal": "x"}), json.dumps("4"), json.dumps(["a"])],
        )
        conn.commit()


def _columns(path: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return {row[1] for row in conn.execute("PRAGMA table_info(runs)")}


def _run(run_id: str, created_at: float, **extra: Any) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "user_id": "bob",
        "created_at": created_at,
        "prompt": "p",
        "status": "completed",
        "steps": [],
        "latency_ms": 1.0,
        "path": ["history_recorder"],
        **extra,
    }


def test_old_history_file_is_migrated_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _make_old_history(path)
    assert not _NEW_COLUMNS & _columns(path)

    history = SqliteHistory(path)
    (old,) = history.recent()
    assert old["run_id"] == "old-1" and old["user_id"] == "alice"
    assert old["cost_usd"] == 0.25 and old["tokens"] == 42
    assert old["plan"] == {"steps": [], "final_goal": "x"} and old["answer"] == "4"
    assert old["path"] == ["a"]
    # New columns read as their defaults on old rows.
    assert old["usage"] is None and old["llm_route"] is None
    assert old["route_reason"] is None and old["fallback_reason"] is None
    assert old["llm_wait_s"] == 0
    assert _NEW_COLUMNS <= _columns(path)


def test_migrated_file_accepts_new_records(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _make_old_history(path)
    history = SqliteHistory(path)
    usage = {"gpt-4o": {"calls": 1, "tokens": 10, "cost_usd": 0.5}}
    history.record(
        _run(
            "new-1",
            200.0,
            cost_usd=0.5,
            route_reason="complex",
            fallback_reason=None,
            llm_route=["fast (gpt-4o-mini): timeout", "smart (gpt-4o): plan"],
            llm_wait_s=1.5,
            usage=usage,
        )
    )
    new, old = history.recent()
    assert (new["run_id"], old["run_id"]) == ("new-1", "old-1")
    assert new["llm_route"] == ["fast (gpt-4o-mini): timeout", "smart (gpt-4o): plan"]
    assert new["llm_wait_s"] == 1.5 and new["usage"] == usage
    assert new["route_reason"] == "complex"
    assert history.cost_since(0) == pytest.approx(0.75)
    assert history.usage_by_model() == usage


def test_migration_is_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite"
    _make_old_history(path)
    SqliteHistory(path).recent()
    history = SqliteHistory(path)  # a second runtime opening the migrated file
    history.record(_run("new-1", 200.0))
    assert [r["run_id"] for r in history.recent()] == ["new-1", "old-1"]


def test_new_file_has_every_column(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "history.sqlite"
    history = SqliteHistory(path)
    assert history.recent() == []
    assert _NEW_COLUMNS <= _columns(path)


def test_cost_since_sums_runs_at_or_after_since(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "history.sqlite")
    assert history.cost_since(0) == 0.0
    history.record(_run("a", 100.0, cost_usd=1.0))
    history.record(_run("b", 200.0, cost_usd=0.25, user_id="carol"))
    history.record(_run("c", 300.0, cost_usd=0.5))
    assert history.cost_since(0) == pytest.approx(1.75)
    assert history.cost_since(200.0) == pytest.approx(0.75)  # at `since` counts
    assert history.cost_since(200.1) == pytest.approx(0.5)
    assert history.cost_since(301) == 0.0
    assert isinstance(history.cost_since(301), float)


def test_usage_by_model_aggregates_runs_and_models(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "history.sqlite")
    history.record(
        _run(
            "a",
            100.0,
            usage={
                "gpt-4o-mini": {"calls": 2, "tokens": 100, "cost_usd": 0.01},
                "gpt-4o": {"calls": 1, "tokens": 50, "cost_usd": 0.2},
            },
        )
    )
    history.record(
        _run("b", 200.0, usage={"gpt-4o-mini": {"calls": 1, "tokens": 30, "cost_usd": 0.005}})
    )
    history.record(_run("c", 300.0, usage={"o4-mini": {"calls": 1, "tokens": 70, "cost_usd": 0.1}}))
    history.record(_run("d", 400.0, usage={}))
    history.record(_run("e", 500.0))  # no usage column given: NULL

    total = history.usage_by_model()
    assert set(total) == {"gpt-4o-mini", "gpt-4o", "o4-mini"}
    assert total["gpt-4o-mini"]["calls"] == 3 and total["gpt-4o-mini"]["tokens"] == 130
    assert total["gpt-4o-mini"]["cost_usd"] == pytest.approx(0.015)
    assert total["gpt-4o"] == {"calls": 1, "tokens": 50, "cost_usd": 0.2}

    since = history.usage_by_model(since=200.0)
    assert set(since) == {"gpt-4o-mini", "o4-mini"}
    assert since["gpt-4o-mini"]["calls"] == 1 and since["gpt-4o-mini"]["tokens"] == 30
    assert history.usage_by_model(since=1000.0) == {}


def test_usage_by_model_skips_runs_recorded_with_usage_none(tmp_path: Path) -> None:
    # `record` serializes None as the JSON text "null", which is not SQL NULL.
    history = SqliteHistory(tmp_path / "history.sqlite")
    history.record(_run("a", 100.0, usage={"m": {"calls": 1}}))
    history.record(_run("b", 200.0, usage=None))
    assert history.usage_by_model() == {"m": {"calls": 1}}


def test_add_usage_in_place() -> None:
    total: dict[str, dict[str, float]] = {"m": {"calls": 1, "tokens": 5}}
    add_usage(total, {"m": {"calls": 2, "cost_usd": 0.5}, "n": {"calls": 1}})
    assert total == {"m": {"calls": 3, "tokens": 5, "cost_usd": 0.5}, "n": {"calls": 1}}


def test_recent_filters_by_user_and_limits(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "history.sqlite")
    for i in range(5):
        history.record(_run(f"r{i}", float(i), user_id="bob" if i % 2 else "alice"))
    assert [r["run_id"] for r in history.recent(limit=2)] == ["r4", "r3"]
    assert [r["run_id"] for r in history.recent("bob")] == ["r3", "r1"]
