"""SQLite files shared by the todo store, the history and the plan cache: WAL, busy waits, schema."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another thread's or process's transaction before giving up."""

STORAGE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, OSError, ValueError)
"""What a broken or unreadable store raises (pydantic's ValidationError is a ValueError)."""


class SqliteFile:
    """One SQLite database file with its schema, opened per operation.

    A connection per operation keeps every caller (threads, processes, `langgraph dev` workers)
    independent; WAL lets readers proceed while one writer holds the lock; `write()` takes the
    lock up front (`BEGIN IMMEDIATE`) so read-then-write sequences cannot interleave.
    """

    def __init__(
        self,
        path: Path,
        schema: Sequence[str],
        added_columns: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        """Use the file at `path`; it and `schema` (idempotent statements) are created on first use.

        `added_columns` (table -> column -> declaration) lists columns newer than the table's
        first release: files written by an older version get them added, keeping their rows.
        """
        self.path = path
        self._schema = tuple(schema)
        self._added_columns = {t: dict(c) for t, c in (added_columns or {}).items()}
        self._ready = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection in autocommit mode, closed afterwards."""
        self._ensure_schema()
        with contextlib.closing(self._open()) as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Yield a connection inside a `BEGIN IMMEDIATE` transaction, committed on success."""
        with self.read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun explicitly, never implicitly.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.row_factory = sqlite3.Row
        return conn

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            deadline = time.monotonic() + BUSY_TIMEOUT_S
            delay = 0.005
            while True:
                try:
                    self._create_schema()
                    break
                except sqlite3.OperationalError as exc:
                    # Switching a fresh file to WAL needs an exclusive lock, and SQLite reports
                    # two processes doing it at once as "locked" without waiting: back off here.
                    busy = (exc.sqlite_errorcode & 0xFF) in (
                        sqlite3.SQLITE_BUSY,
                        sqlite3.SQLITE_LOCKED,
                    )
                    if not busy or time.monotonic() >= deadline:
                        raise
                time.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, 0.2)
            self._ready = True

    def _create_schema(self) -> None:
        with contextlib.closing(self._open()) as conn:
            # The journal mode is stored in the file: only the first opener pays for the switch.
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in self._schema:
                    conn.execute(statement)
                for table, columns in self._added_columns.items():
                    present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                    for column, declaration in columns.items():
                        if column not in present:
                            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
