"""SQLite connections shared by the history and the plan cache: WAL, generous busy timeout."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another process's transaction before giving up."""


@contextmanager
def connect(path: Path, *, write: bool = False) -> Iterator[sqlite3.Connection]:
    """Yield a connection to `path`, in one `BEGIN IMMEDIATE` transaction when `write` is set.

    A connection per operation keeps every caller (threads, processes, `langgraph dev` workers)
    independent; WAL lets readers proceed while one writer holds the lock.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.row_factory = sqlite3.Row
        if not write:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

STORAGE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError, ValueError)
"""What a broken or unreadable store raises (pydantic's ValidationError is a ValueError)."""
