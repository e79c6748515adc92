"""Plan cache: plans of runs that validated and executed, looked up per user and planner signature.

This is the exact level: the key is the normalized request. Normalization only folds what cannot
change a plan (surrounding and repeated whitespace, trailing question marks). Everything else is
kept: case (a todo's text keeps the person's casing), `!` (a factorial: "what is 5!") and `.`
(a decimal point: "what is 5."). The FAISS semantic level extends `lookup`
without changing the node that calls it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from graph.db import SqliteFile
from graph.plan import Plan

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS plans (
    user_id    TEXT NOT NULL,
    signature  TEXT NOT NULL,
    normalized TEXT NOT NULL,
    plan       TEXT NOT NULL,
    run_id     TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used  REAL NOT NULL,
    hits       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, signature, normalized)
)""",
)

_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[\s?]+$")


def normalize(request: str) -> str:
    """Fold a request for exact matching without touching anything a plan could copy."""
    return _TRAILING.sub("", _SPACE.sub(" ", request).strip())


@dataclass(frozen=True)
class CacheHit:
    """A cached plan and why it matched."""

    plan: Plan
    level: Literal["exact"]
    run_id: str
    """The run whose successful execution put the plan in the cache."""


class PlanCache(Protocol):
    """Where validated, executed plans are kept for reuse."""

    def lookup(self, user_id: str, signature: str, normalized: str) -> CacheHit | None:
        """Return the cached plan for this request, or None."""

    def store(self, user_id: str, signature: str, normalized: str, plan: Plan, run_id: str) -> None:
        """Keep `plan` for this request."""

    def evict(self, user_id: str, signature: str, normalized: str) -> None:
        """Forget the plan for this request (it failed validation or execution)."""


class SqlitePlanCache:
    """`PlanCache` on a SQLite file under the data directory."""

    def __init__(self, path: Path) -> None:
        """Use the database at `path`, created on first use."""
        self._db = SqliteFile(path, _SCHEMA)

    def lookup(self, user_id: str, signature: str, normalized: str) -> CacheHit | None:
        """Return the cached plan for this request, or None; a hit refreshes its LRU stamp."""
        key = (user_id, signature, normalized)
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT plan, run_id FROM plans WHERE user_id=? AND signature=? AND normalized=?",
                key,
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE plans SET hits = hits + 1, last_used = ? "
                "WHERE user_id=? AND signature=? AND normalized=?",
                (time.time(), *key),
            )
        return CacheHit(
            plan=Plan.model_validate_json(row["plan"]), level="exact", run_id=row["run_id"]
        )

    def store(self, user_id: str, signature: str, normalized: str, plan: Plan, run_id: str) -> None:
        """Keep `plan` for this request, replacing an older one."""
        now = time.time()
        with self._db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO plans VALUES (?, ?, ?, ?, ?, ?, ?, 0)",
                (user_id, signature, normalized, plan.model_dump_json(), run_id, now, now),
            )

    def evict(self, user_id: str, signature: str, normalized: str) -> None:
        """Forget the plan for this request."""
        with self._db.write() as conn:
            conn.execute(
                "DELETE FROM plans WHERE user_id=? AND signature=? AND normalized=?",
                (user_id, signature, normalized),
            )
