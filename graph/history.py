"""Run history: every run's request, plan, steps and outcome, in SQLite under the data directory."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Protocol

from graph.db import SqliteFile

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS runs (
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
)""",
    "CREATE INDEX IF NOT EXISTS runs_user_time ON runs (user_id, created_at)",
    "CREATE INDEX IF NOT EXISTS runs_time ON runs (created_at)",
    """
CREATE TABLE IF NOT EXISTS breaker_events (
    at           REAL NOT NULL,
    endpoint     TEXT NOT NULL,
    model        TEXT NOT NULL,
    old_state    TEXT NOT NULL,
    state        TEXT NOT NULL,
    cooldown_s   REAL NOT NULL,
    opened_count INTEGER NOT NULL,
    last_failure TEXT
)""",
    "CREATE INDEX IF NOT EXISTS breaker_events_key ON breaker_events (endpoint, model, at)",
)

_ADDED_COLUMNS = {
    "runs": {
        "route_reason": "TEXT",
        "fallback_reason": "TEXT",
        "llm_route": "TEXT",
        "llm_wait_s": "REAL NOT NULL DEFAULT 0",
        "usage": "TEXT",
        "cache_hit": "TEXT",
        "examples": "TEXT",
        "forgotten_at": "REAL",
        "node_ms": "TEXT",
    }
}
"""Columns added after the first release; older history files gain them on open."""

_JSON_COLUMNS = (
    "plan",
    "steps",
    "answer",
    "path",
    "llm_route",
    "usage",
    "cache_hit",
    "examples",
    "node_ms",
)


class HistoryStore(Protocol):
    """Where runs are recorded."""

    def record(self, run: dict[str, Any]) -> None:
        """Store one run (keys are the `runs` columns)."""

    def recent(self, user_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Return the newest runs first, for one user or everyone."""

    def cost_since(self, since: float) -> float:
        """Return the LLM cost in USD of every user's runs created at or after `since`."""

    def usage_by_model(self, since: float = 0.0) -> dict[str, dict[str, float]]:
        """Return calls, tokens and cost per model, cumulative over runs since `since`."""

    def record_breaker(self, event: dict[str, Any]) -> None:
        """Store one circuit-breaker transition (keys are the `breaker_events` columns)."""

    def forget(self, run_id: str, at: float) -> bool:
        """Mark a run as bad (its plan must not be reused or taught); False if unknown."""

    def get(self, run_id: str) -> dict[str, Any] | None:
        """Return one run, or None if there is no such run."""

    def breaker_states(self) -> list[dict[str, Any]]:
        """Return the last recorded transition of each endpoint+model's breaker."""


def add_usage(total: dict[str, dict[str, float]], usage: dict[str, dict[str, float]]) -> None:
    """Add one run's per-model usage into `total`, in place."""
    for model, counts in usage.items():
        into = total.setdefault(model, {})
        for key, value in counts.items():
            into[key] = into.get(key, 0) + value


def _run(row: sqlite3.Row) -> dict[str, Any]:
    return {k: _decoded(row[k]) if k in _JSON_COLUMNS else row[k] for k in row.keys()}


def _decoded(raw: str | None) -> Any:
    """Return a JSON column's value; an unreadable one (a torn or hand-edited row) reads as None."""
    try:
        return json.loads(raw) if raw is not None else None
    except ValueError:
        return None


class SqliteHistory:
    """`HistoryStore` on a SQLite file; safe for many threads and processes."""

    def __init__(self, path: Path) -> None:
        """Use the database at `path`, created on first write."""
        self._db = SqliteFile(path, _SCHEMA, _ADDED_COLUMNS)

    def record(self, run: dict[str, Any]) -> None:
        """Store one run; JSON columns are serialized here."""
        row = {k: json.dumps(v, default=str) if k in _JSON_COLUMNS else v for k, v in run.items()}
        columns = ", ".join(row)
        marks = ", ".join(f":{k}" for k in row)
        with self._db.write() as conn:
            conn.execute(f"INSERT OR REPLACE INTO runs ({columns}) VALUES ({marks})", row)

    def recent(self, user_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        """Return the newest runs first, for one user or everyone."""
        where, args = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM runs {where} ORDER BY created_at DESC LIMIT ?", [*args, limit]
            ).fetchall()
        return [_run(r) for r in rows]

    def window(
        self, since: float, until: float, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the runs created in [`since`, `until`), oldest first, for one user or everyone.

        One query on the `created_at` index (or the `(user_id, created_at)` one for a user).
        """
        where, args = ("user_id = ? AND ", [user_id]) if user_id is not None else ("", [])
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT * FROM runs WHERE {where}created_at >= ? AND created_at < ?"
                " ORDER BY created_at",
                [*args, since, until],
            ).fetchall()
        return [_run(r) for r in rows]

    def get(self, run_id: str) -> dict[str, Any] | None:
        """Return one run, or None if there is no such run."""
        with self._db.read() as conn:
            row = conn.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).fetchone()
        return _run(row) if row is not None else None

    def cost_since(self, since: float) -> float:
        """Return the LLM cost in USD of every user's runs created at or after `since`."""
        with self._db.read() as conn:
            (total,) = conn.execute(
                "SELECT COALESCE(SUM(cost_usd), 0) FROM runs WHERE created_at >= ?", [since]
            ).fetchone()
        return float(total)

    def usage_by_model(self, since: float = 0.0) -> dict[str, dict[str, float]]:
        """Return calls, tokens and cost per model, cumulative over runs since `since`."""
        total: dict[str, dict[str, float]] = {}
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT usage FROM runs WHERE created_at >= ? AND usage IS NOT NULL", [since]
            )
            for (raw,) in rows:
                usage = json.loads(raw)
                if isinstance(usage, dict):  # a run recorded without usage stores JSON null
                    add_usage(total, usage)
        return total

    def record_breaker(self, event: dict[str, Any]) -> None:
        """Store one circuit-breaker transition (keys are the `breaker_events` columns)."""
        columns = ", ".join(event)
        marks = ", ".join(f":{k}" for k in event)
        with self._db.write() as conn:
            conn.execute(f"INSERT INTO breaker_events ({columns}) VALUES ({marks})", event)

    def forget(self, run_id: str, at: float) -> bool:
        """Mark a run as bad (its plan must not be reused or taught); False if unknown."""
        with self._db.write() as conn:
            changed = conn.execute(
                "UPDATE runs SET forgotten_at = ? WHERE run_id = ?", [at, run_id]
            ).rowcount
        return bool(changed)

    def breaker_states(self) -> list[dict[str, Any]]:
        """Return the last recorded transition of each endpoint+model's breaker.

        Breakers live in the process that runs the graph; this is what other processes (the
        CLI, a metrics endpoint) can know of them. An `open` state with `at + cooldown_s` in
        the past means the next request will be let through as a trial.
        """
        with self._db.read() as conn:
            rows = conn.execute(
                """SELECT e.* FROM breaker_events e
                   JOIN (SELECT endpoint, model, MAX(rowid) AS last FROM breaker_events
                         GROUP BY endpoint, model) l ON e.rowid = l.last
                   ORDER BY e.endpoint, e.model"""
            ).fetchall()
        return [dict(r) for r in rows]
