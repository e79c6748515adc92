"""Vector store: FAISS indexes over SQLite rows, per user, planner signature and embedding space.

The semantic plan cache and the dynamic few-shot examples keep entries here: a key (the normalized
request), an optional template, a JSON payload, provenance and a vector. Each `VectorStore` owns
one table of a SQLite file that several stores (and processes) share, and a subfolder of
`index_dir` for its index snapshots.

**SQLite is the source of truth.** A row holds the entry and its L2-normalized float32 vector with
its dimension, so deleting every index file loses nothing. FAISS indexes are derived, built in
memory per partition `(user_id, signature, space)` on the partition's first search. `space` names
the embedding model, so vectors of different models or dimensions are never compared. Inner
product on unit vectors is the cosine.

**Index type by size.** A partition of at most `flat_limit` entries (`FLAT_LIMIT`, 20 000) uses an
exact `IndexIDMap2(IndexFlatIP)`. Results are exact, `remove_ids` deletes in place and building it
is a copy. A scan is memory-bound: on one core of a two-core machine, FAISS takes about 0.4 ms per
10 000 vectors of 384 dimensions, and a whole search about 1 ms with the SQLite round trips. Past
the limit the scan keeps growing linearly (7.6 ms per search at 100 000). So a larger partition
switches to `IndexHNSWFlat` with the inner-product metric. It is approximate, and a search costs
about 3 ms at 100 000 entries: 1.7 ms in FAISS plus the SQLite reads. `HNSW_M` = 32 links per node
costs about 270 bytes per vector next to its 1 536 bytes. M = 16 missed a few percent of
near-duplicates at 384 dimensions. `HNSW_EF_SEARCH` = 128 candidates: 64 halves the FAISS time but
finds fewer near-duplicates at 100 000, and a missed cache hit costs a planning call.
`HNSW_EF_CONSTRUCTION` stays at FAISS's 40: doubling it doubles the build time for no measurable
gain here. HNSW builds slowly: about 3 s for 20 000 vectors and 30-60 s for 100 000 on two cores.
So an HNSW index is built on a background thread from SQLite while the current index keeps
serving, then swapped in. On first load without a snapshot, a large partition is served by an exact
flat index until its HNSW index is ready. Each search runs FAISS on one thread. With several
OpenMP threads, waking them and waiting at the barrier cost more than the scan itself: 24 ms
instead of 0.4 ms at 10 000 on a busy machine. Concurrent requests use the other cores.

**Deletes and tombstones.** HNSW cannot remove ids. A deleted entry stays in the graph as a
tombstone, excluded from results by an `IDSelector`, and the partition is rebuilt once tombstones
exceed `REBUILD_FRACTION` (20 %) of it. The rebuild is synchronous and flat when few entries remain,
otherwise a background HNSW build. Flat indexes drop deleted ids at once.

**Reads verify.** A search asks FAISS for `k + OVERFETCH` candidates and fetches their rows from
SQLite, checking the partition and the TTL. Ids that are missing there or expired have been
deleted, replaced or aged out, by this process or another. They are dropped from the index (flat) or
tombstoned (HNSW). If fewer than `k` live entries remain, the search asks again for twice as many,
until it has `k` or the index is exhausted. So a search returns the best live entries even when
the nearest FAISS neighbours are dead. Ids come from `AUTOINCREMENT` and are never reused, so a
stale id can only be missing: it never names another entry.

**Other processes.** Writers hold SQLite's write lock, so a committed row always has a higher id
than every row committed before it. A search therefore catches up on other processes' puts with one
indexed query per search: rows of its partition with an id above the highest one it loaded.
`put` never touches FAISS: the next search loads the row. A replaced entry gets a new id, so another
process's index cannot keep serving its old vector under a live id. Deletions by other processes
are found when their ids come up as candidates (above) and when a snapshot is reconciled.

**Snapshots.** A partition's index is written to `index_dir/<table>/<hash>.faiss` once it has grown
by `snapshot_every` entries (`SNAPSHOT_EVERY`, 1 000) since its last snapshot. That covers every
fresh build of that size. So a startup with 100 000 entries reads one file (about 0.5 s) instead
of rebuilding HNSW for most of a minute. A partition that has not gained that many entries is not
snapshotted: it rebuilds from SQLite in milliseconds. Snapshots are not rewritten on every put.
The index is serialized into a temporary file under the partition lock, so searches of that
partition wait for it (a fraction of a second at 100 000). A trailer follows the index: the
store's id, the table, the partition, the index kind and dimension, the highest row id covered and
a CRC32. The file is then fsynced and renamed over the previous snapshot. A snapshot is used only
if its trailer and CRC match, and it is then reconciled with SQLite. Ids that SQLite no longer has
become tombstones. A row the snapshot should hold but lacks, or a vector that differs in a spot
check, rejects the snapshot as foreign or stale. A missing, truncated, corrupt or rejected
snapshot means a rebuild.

**Crash safety.** A put is one SQLite transaction in WAL mode, so a killed process loses at most
the put in flight. Index files are only replaced by rename. A kill while snapshotting leaves the
previous snapshot and a temporary file, which the next snapshot of that partition deletes.

**Threads.** Each partition has a lock, held while its index is searched, extended or swapped.
Row fetches, SQLite writes and HNSW builds run outside it. SQLite access goes through
`SqliteFile`'s per-operation connections.

**Memory.** 100 000 vectors of 384 floats take 150 MB in FAISS, plus about 27 MB of HNSW links.
A runtime serving such a partition from its snapshot holds about 190 MB more than one with an
empty cache (`python -m bench --only memory`; 430 MB with the local embedder). Vectors are never
kept as Python objects, and rows are loaded in pages. While a background build runs, the old
index and the new one coexist. The first vectors added to a freshly loaded index make FAISS grow
its storage, copying it once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import numpy.typing as npt

from graph.db import SqliteFile

logger = logging.getLogger(__name__)

# Wrappers missing from the type stubs FAISS ships.
_HNSW_PARAMETERS: Any = faiss.SearchParametersHNSW  # type: ignore[attr-defined]
_IO_WRITER: Any = faiss.PyCallbackIOWriter  # type: ignore[attr-defined]
_IO_READER: Any = faiss.PyCallbackIOReader  # type: ignore[attr-defined]

FLAT_LIMIT = 20_000
"""Largest partition served by an exact flat index; larger ones get HNSW (see the module doc)."""

HNSW_M = 32
"""Links per HNSW node: recall on 384-dimension embeddings against ~270 bytes per vector."""

HNSW_EF_CONSTRUCTION = 40
"""Candidates kept while inserting into HNSW (FAISS's default; more slows builds for no gain)."""

HNSW_EF_SEARCH = 128
"""Candidates kept while searching HNSW (raised to the number of results asked for)."""

REBUILD_FRACTION = 0.2
"""Share of tombstones in an HNSW index beyond which the partition is rebuilt."""

SNAPSHOT_EVERY = 1_000
"""Entries an index must gain since its last snapshot (or its build) before it is snapshotted."""

OVERFETCH = 8
"""Extra candidates asked of FAISS beyond `k`, for entries deleted by another process."""

_LOAD_PAGE = 4_096
"""Rows read per query when building an index: a short read, a few MB of vectors at a time."""

_FETCH_CHUNK = 500
"""Ids per `IN (...)` list: below SQLite's smallest limit on bound parameters."""

_SPOT_CHECKS = 4
"""Vectors compared with SQLite when a snapshot is loaded."""

_STALE_TEMP_S = 600.0
"""Age after which a snapshot's temporary file is assumed abandoned even if its process lives."""

_RETRY_S = 30.0
"""Pause before a failed background build is tried again."""

_MAGIC = b"CRNVS001"
_FORMAT = 1
_TRAILER_LEN = 4 + len(_MAGIC)
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_META_TABLE = "vector_store_meta"
_ENTRY_COLUMNS = (
    "id, user_id, signature, key, template, run_id, payload, created_at, last_used, hits"
)

Kind = Literal["flat", "hnsw"]
_Key = tuple[str, str, str]
"""A partition: (user_id, signature, space)."""

_Rows = list[tuple[int, int, bytes]]
"""(id, dim, vector blob) rows, ascending id."""


@dataclass(frozen=True)
class Entry:
    """One stored entry (its vector stays in the store)."""

    id: int
    """SQLite row id, also the entry's FAISS id; never reused."""
    user_id: str
    signature: str
    """Planner signature: entries of another signature are never returned."""
    key: str
    """Unique per (user_id, signature): the normalized request."""
    template: str | None
    """Secondary exact lookup key (the request with numbers and quotes masked)."""
    run_id: str
    """The run whose success created the entry."""
    payload: dict[str, Any]
    created_at: float
    last_used: float
    hits: int


def _schema(table: str) -> tuple[str, ...]:
    return (
        f"""
CREATE TABLE IF NOT EXISTS {table} (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    TEXT NOT NULL,
    signature  TEXT NOT NULL,
    key        TEXT NOT NULL,
    template   TEXT,
    space      TEXT NOT NULL,
    dim        INTEGER NOT NULL,
    vector     BLOB NOT NULL,
    run_id     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_used  REAL NOT NULL,
    hits       INTEGER NOT NULL DEFAULT 0,
    UNIQUE (user_id, signature, key)
)""",
        # Catch-up and builds read a partition in id order.
        f"CREATE INDEX IF NOT EXISTS {table}_partition ON {table} (user_id, signature, space, id)",
        f"CREATE INDEX IF NOT EXISTS {table}_template ON {table} (user_id, signature, template)",
        f"CREATE INDEX IF NOT EXISTS {table}_lru ON {table} (user_id, last_used)",
        f"CREATE INDEX IF NOT EXISTS {table}_run ON {table} (run_id)",
        f"CREATE INDEX IF NOT EXISTS {table}_created ON {table} (created_at)",
        f"CREATE TABLE IF NOT EXISTS {_META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        # A random id per table, written once: a snapshot made for another database (a copied or
        # recreated file, whose ids restart at 1) is recognized as foreign.
        f"INSERT OR IGNORE INTO {_META_TABLE} (name, value) "
        f"VALUES ('{table}.store_id', lower(hex(randomblob(16))))",
    )


def _unit(vector: Sequence[float] | npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Return `vector` as a contiguous float32 unit vector (a zero vector stays zero)."""
    # float64 first: float32 could overflow to inf while computing the norm of large values.
    arr = np.asarray(vector, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"A vector must be a non-empty flat sequence of numbers, got shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError("A vector must contain only finite numbers (no NaN or infinity).")
    norm = float(np.linalg.norm(arr))
    if norm > 0:
        arr = arr / norm
    return np.ascontiguousarray(arr, dtype=np.float32)


def _entry(row: sqlite3.Row) -> Entry:
    try:
        payload = json.loads(row["payload"])
    except ValueError:
        payload = None
    # An unreadable payload (a torn or hand-edited row) reads as empty: callers find nothing
    # usable in it and delete the entry, instead of one bad row failing every lookup near it.
    if not isinstance(payload, dict):
        payload = {}
    return Entry(
        id=row["id"],
        user_id=row["user_id"],
        signature=row["signature"],
        key=row["key"],
        template=row["template"],
        run_id=row["run_id"],
        payload=payload,
        created_at=row["created_at"],
        last_used=row["last_used"],
        hits=row["hits"],
    )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _vectors(rows: _Rows, dim: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    # One join and one view: no per-vector Python objects beyond the rows SQLite returned.
    flat = np.frombuffer(b"".join(r[2] for r in rows), dtype="<f4")
    if flat.size != len(rows) * dim:
        raise ValueError(f"Stored vectors do not have the {dim} dimensions their rows declare.")
    return ids, np.ascontiguousarray(flat.reshape(len(rows), dim), dtype=np.float32)


class _Index:
    """One partition's FAISS index, what it covers and its tombstones."""

    def __init__(self, kind: Kind, dim: int, index: Any = None) -> None:
        self.kind: Kind = kind
        self.dim = dim
        self.faiss: Any = index if index is not None else self._new(kind, dim)
        self.max_id = 0
        """Highest row id this index covers: rows above it are loaded by the next catch-up."""
        self.tombstones: set[int] = set()
        """HNSW only: ids still in the graph whose rows are gone."""
        self._selector: Any = None

    @staticmethod
    def _new(kind: Kind, dim: int) -> Any:
        if kind == "flat":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        hnsw = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        return faiss.IndexIDMap2(hnsw)

    @property
    def size(self) -> int:
        return int(self.faiss.ntotal)

    @property
    def live(self) -> int:
        return self.size - len(self.tombstones)

    def ids(self) -> npt.NDArray[np.int64]:
        """Return the ids in the index: a view of FAISS's map, valid until the index changes."""
        n = int(self.faiss.id_map.size())
        if n == 0:
            return np.empty(0, dtype=np.int64)
        view: npt.NDArray[np.int64] = faiss.rev_swig_ptr(self.faiss.id_map.data(), n)
        return view

    def add(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        if len(ids):
            self.faiss.add_with_ids(vectors, ids)
            self.max_id = max(self.max_id, int(ids[-1]))

    def drop(self, ids: Iterable[int]) -> None:
        """Forget entries: removed from a flat index, tombstoned in HNSW."""
        wanted = np.unique(np.fromiter(ids, dtype=np.int64))
        if wanted.size == 0 or self.size == 0:
            return
        if self.kind == "flat":
            self.faiss.remove_ids(wanted)
            return
        present = wanted[np.isin(wanted, self.ids(), assume_unique=True)]
        new = set(present.tolist()) - self.tombstones
        if new:
            self.tombstones |= new
            self._selector = None

    def search(
        self, query: npt.NDArray[np.float32], n: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        q = query.reshape(1, -1)
        # One query is one core's work. FAISS would split a flat scan across OpenMP threads, and
        # waking them and waiting at the barrier costs more than the scan: 24 ms instead of
        # 0.4 ms at 10 000 vectors on a busy two-core machine. Concurrent requests use the other
        # cores. The setting is per thread and is restored.
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self._search(q, n)
        finally:
            faiss.omp_set_num_threads(threads)

    def _search(
        self, q: npt.NDArray[np.float32], n: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        if self.kind == "flat":
            scores, ids = self.faiss.search(q, n)
        else:
            # Parameters per call: FAISS's id-map wrapper edits them while it searches.
            params = _HNSW_PARAMETERS(efSearch=max(HNSW_EF_SEARCH, n))
            if self.tombstones:
                if self._selector is None:
                    batch = faiss.IDSelectorBatch(
                        np.fromiter(self.tombstones, dtype=np.int64, count=len(self.tombstones))
                    )
                    # Keep the batch alive: the negation only points at it.
                    self._selector = (faiss.IDSelectorNot(batch), batch)
                params.sel = self._selector[0]
            scores, ids = self.faiss.search(q, n, params=params)
        return scores[0], ids[0]


MAX_LOADED_PARTITIONS = 64
"""Partitions (user, signature, space) kept in memory per table; the least recently searched
go first."""


class _Partition:
    """The in-memory state of one (user_id, signature, space)."""

    def __init__(self, key: _Key) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.loaded = False
        self.index: _Index | None = None
        """None while the partition has no entries (its dimension is unknown)."""
        self.source = ""
        self.building = False
        self.dead_log: list[int] | None = None
        """While a replacement index is built: ids found dead meanwhile, to drop from it too."""
        self.added_since_snapshot = 0
        self.retry_after = 0.0

    @property
    def max_id(self) -> int:
        return self.index.max_id if self.index is not None else 0


class VectorStore:
    """Entries with vectors in one table of a shared SQLite file, searched through FAISS.

    Args:
        path: The SQLite file, shared with other stores (other tables) and processes.
        index_dir: Where index snapshots go; this store uses the subfolder named after `table`.
        table: This store's table (letters, digits and underscores).
        ttl_s: Entries older than this (by `created_at`) are never returned and are purged on
            `put` and `expire`. None keeps entries until deleted.
        max_entries: Per user, across signatures and spaces: a `put` beyond it evicts the user's
            least recently used entries. None for no cap.
        flat_limit: Largest partition searched exactly; larger ones use HNSW.
        clock: The time source for `created_at`, `last_used` and the TTL.
        snapshot_every: Entries an index must gain before it is snapshotted again.
        background: Build HNSW indexes and write snapshots on a worker thread (the default), so
            no search waits for them. False runs them in the calling thread: deterministic, for
            tests and tools.
    """

    def __init__(
        self,
        path: Path,
        index_dir: Path,
        *,
        table: str,
        ttl_s: float | None = None,
        max_entries: int | None = None,
        flat_limit: int = FLAT_LIMIT,
        clock: Callable[[], float] = time.time,
        snapshot_every: int = SNAPSHOT_EVERY,
        background: bool = True,
    ) -> None:
        if not _TABLE_NAME.fullmatch(table) or table.lower().startswith("sqlite_"):
            raise ValueError(f"Table name {table!r} must be letters, digits and underscores.")
        if table == _META_TABLE:
            raise ValueError(f"Table name {table!r} is reserved for the store's own bookkeeping.")
        if ttl_s is not None and not ttl_s > 0:
            raise ValueError(f"ttl_s must be positive or None, got {ttl_s!r}.")
        if max_entries is not None and max_entries < 1:
            raise ValueError(f"max_entries must be at least 1 or None, got {max_entries!r}.")
        if flat_limit < 0 or snapshot_every < 1:
            raise ValueError("flat_limit must be >= 0 and snapshot_every >= 1.")
        self.path = path
        self.table = table
        self.index_dir = index_dir / table
        self._db = SqliteFile(path, _schema(table))
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._flat_limit = flat_limit
        self._clock = clock
        self._snapshot_every = snapshot_every
        self._background = background
        self._store_id: str | None = None
        self._partitions: OrderedDict[_Key, _Partition] = OrderedDict()
        self._partitions_lock = threading.Lock()
        self._counters = {
            "index_builds": 0,
            "snapshot_loads": 0,
            "snapshot_rejects": 0,
            "snapshot_writes": 0,
        }
        self._counters_lock = threading.Lock()
        self._jobs: deque[tuple[str, _Partition]] = deque()
        self._queued: set[tuple[str, _Key]] = set()
        """Jobs queued or running; a job leaves it when it has finished."""
        self._jobs_cv = threading.Condition()
        self._running = 0
        """Jobs between their start and the scheduling of their follow-up."""
        self._worker: threading.Thread | None = None

    # Exact lookups

    def get(self, user_id: str, signature: str, key: str) -> Entry | None:
        """Return the live entry with this key, or None.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be read.
        """
        sql, args = self._live(
            f"SELECT {_ENTRY_COLUMNS} FROM {self.table} WHERE user_id=? AND signature=? AND key=?",
            [user_id, signature, key],
        )
        with self._db.read() as conn:
            row = conn.execute(sql, args).fetchone()
        return _entry(row) if row is not None else None

    def with_template(
        self, user_id: str, signature: str, template: str, limit: int | None = None
    ) -> list[Entry]:
        """Return the live entries with this template, most recently used first (at most `limit`).

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be read.
        """
        sql, args = self._live(
            f"SELECT {_ENTRY_COLUMNS} FROM {self.table} "
            "WHERE user_id=? AND signature=? AND template=?",
            [user_id, signature, template],
        )
        with self._db.read() as conn:
            order = " ORDER BY last_used DESC, id DESC" + (" LIMIT ?" if limit is not None else "")
            rows = conn.execute(sql + order, [*args, *([limit] if limit is not None else [])])
            return [_entry(row) for row in rows.fetchall()]

    # Similarity

    def search(
        self,
        user_id: str,
        signature: str,
        space: str,
        vector: Sequence[float] | npt.NDArray[Any],
        k: int,
    ) -> list[tuple[Entry, float]]:
        """Return up to `k` live entries of the partition closest to `vector`, best cosine first.

        Entries another process committed are seen; entries deleted anywhere are never returned.

        Raises:
            ValueError: `vector` is not a finite flat vector, or its dimension differs from the
                partition's entries.
            sqlite3.Error, OSError: the store cannot be read.
        """
        query = _unit(vector)
        if k <= 0:
            return []
        part = self._partition((user_id, signature, space))
        cutoff = self._cutoff()
        results: list[tuple[Entry, float]] = []
        with self._db.read() as conn:
            self._sync(part, conn)
            want = k + OVERFETCH
            while True:
                with part.lock:
                    index = part.index
                    if index is None or index.size == 0:
                        break
                    if query.shape[0] != index.dim:
                        raise ValueError(
                            f"The query vector has {query.shape[0]} dimensions but the entries "
                            f"of space {space!r} have {index.dim}: they come from another "
                            "embedding model."
                        )
                    exhausted = want >= index.size
                    scores, ids = index.search(query, min(want, index.size))
                candidates = [
                    (int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0
                ]
                rows = self._fetch(conn, part.key, [i for i, _ in candidates], cutoff)
                dead = [i for i, _ in candidates if i not in rows]
                if dead:
                    self._drop(part, dead)
                results = [(rows[i], s) for i, s in candidates if i in rows]
                # Done with k live entries, or when nothing new was found dead: asking again
                # would return the same candidates. Each retry drops at least one dead id.
                if len(results) >= k or not dead or exhausted:
                    break
                want *= 2
        self._maintain(part)
        return results[:k]

    # Writes

    def put(
        self,
        user_id: str,
        signature: str,
        key: str,
        *,
        template: str | None,
        space: str,
        vector: Sequence[float] | npt.NDArray[Any],
        run_id: str,
        payload: dict[str, Any],
    ) -> int:
        """Store an entry, replacing the one with the same (user_id, signature, key).

        The replacement gets a new id, so no index keeps serving the old vector. Expired entries
        are purged, and with `max_entries` the user's least recently used entries beyond the cap
        are evicted.

        Returns:
            The new entry's id.

        Raises:
            ValueError: `vector` is not a finite flat vector, its dimension differs from the other
                entries of this (user_id, signature, space), or `payload` is not JSON-serializable.
            sqlite3.Error, OSError: the store cannot be written.
        """
        unit = _unit(vector)
        try:
            payload_json = json.dumps(payload, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The payload must be JSON-serializable: {exc}") from exc
        blob = unit.astype("<f4", copy=False).tobytes()
        dim = int(unit.shape[0])
        t = self.table
        dropped: list[sqlite3.Row] = []
        with self._db.write() as conn:
            now = self._clock()
            dropped += self._purge_expired(conn, now)
            other = conn.execute(
                f"SELECT dim FROM {t} "
                "WHERE user_id=? AND signature=? AND space=? AND key<>? LIMIT 1",
                (user_id, signature, space, key),
            ).fetchone()
            if other is not None and other["dim"] != dim:
                raise ValueError(
                    f"The vector has {dim} dimensions but the entries of space {space!r} for this "
                    f"user and signature have {other['dim']}: one space is one embedding model."
                )
            dropped += conn.execute(
                f"DELETE FROM {t} WHERE user_id=? AND signature=? AND key=? "
                "RETURNING id, user_id, signature, space",
                (user_id, signature, key),
            ).fetchall()
            (entry_id,) = conn.execute(
                f"INSERT INTO {t} (user_id, signature, key, template, space, dim, vector, run_id,"
                " payload, created_at, last_used, hits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)"
                " RETURNING id",
                (
                    user_id,
                    signature,
                    key,
                    template,
                    space,
                    dim,
                    blob,
                    run_id,
                    payload_json,
                    now,
                    now,
                ),
            ).fetchone()
            if self._max_entries is not None:
                # The new entry is the most recently used (ties go to the higher id): never evicted.
                dropped += conn.execute(
                    f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE user_id=? "
                    "ORDER BY last_used DESC, id DESC LIMIT -1 OFFSET ?) "
                    "RETURNING id, user_id, signature, space",
                    (user_id, self._max_entries),
                ).fetchall()
        self._forget(dropped)
        return int(entry_id)

    def touch(self, entry_id: int) -> None:
        """Record a hit: one more hit, and the entry becomes the user's most recently used.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be written.
        """
        with self._db.write() as conn:
            conn.execute(
                f"UPDATE {self.table} SET hits = hits + 1, last_used = ? WHERE id = ?",
                (self._clock(), entry_id),
            )

    def delete(self, entry_id: int) -> bool:
        """Delete one entry; return whether it existed.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be written.
        """
        with self._db.write() as conn:
            dropped = conn.execute(
                f"DELETE FROM {self.table} WHERE id = ? RETURNING id, user_id, signature, space",
                (entry_id,),
            ).fetchall()
        self._forget(dropped)
        return bool(dropped)

    def delete_runs(self, run_ids: Iterable[str]) -> int:
        """Delete every entry created by one of these runs, whoever the user; return how many.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be written.
        """
        wanted = sorted(set(run_ids))
        dropped: list[sqlite3.Row] = []
        with self._db.write() as conn:
            for chunk in _chunks(wanted, _FETCH_CHUNK):
                dropped += conn.execute(
                    f"DELETE FROM {self.table} WHERE run_id IN ({','.join('?' * len(chunk))}) "
                    "RETURNING id, user_id, signature, space",
                    list(chunk),
                ).fetchall()
        self._forget(dropped)
        return len(dropped)

    def copy_users(self, sources: Iterable[str], target: str) -> int:
        """Give `target` a copy of the live entries of the `sources` users; return how many.

        An entry whose (signature, key) `target` already has is skipped, as is a later source's
        entry for a key an earlier copied one took. The copies are new entries (new ids, fresh
        `last_used`, no hits) with the original `run_id`, so forgetting a run forgets its copies.
        `max_entries` is not applied here; the next `put` for `target` applies it.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be written.
        """
        t = self.table
        copied = 0
        with self._db.write() as conn:
            now = self._clock()
            for source in dict.fromkeys(sources):
                if source == target:
                    continue
                sql, args = self._live(
                    f"SELECT signature, key, template, space, dim, vector, run_id, payload, "
                    f"created_at FROM {t} WHERE user_id = ?",
                    [source],
                )
                copied += conn.execute(
                    f"INSERT OR IGNORE INTO {t} (user_id, signature, key, template, space, dim, "
                    "vector, run_id, payload, created_at, last_used, hits) "
                    f"SELECT ?, signature, key, template, space, dim, vector, run_id, payload, "
                    f"created_at, ?, 0 FROM ({sql}) ORDER BY created_at",
                    [target, now, *args],
                ).rowcount
        return copied

    def clear(self, user_id: str | None = None) -> int:
        """Delete every entry of `user_id`, or of everyone; return how many.

        The snapshots of the emptied partitions are deleted too.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be written.
        """
        where, args = ("WHERE user_id = ?", [user_id]) if user_id is not None else ("", [])
        with self._db.write() as conn:
            dropped = conn.execute(
                f"DELETE FROM {self.table} {where} RETURNING id, user_id, signature, space", args
            ).fetchall()
        for key in {(r["user_id"], r["signature"], r["space"]) for r in dropped}:
            with contextlib.suppress(FileNotFoundError):
                self._snapshot_path(key).unlink()
        self._forget(dropped)
        return len(dropped)

    def expire(self) -> int:
        """Delete the entries older than the TTL now; return how many.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be written.
        """
        if self._ttl_s is None:
            return 0
        with self._db.write() as conn:
            dropped = self._purge_expired(conn, self._clock())
        self._forget(dropped)
        return len(dropped)

    # Introspection

    def stats(self, user_id: str | None = None) -> dict[str, Any]:
        """Describe the store, or one user's part of it.

        Returns:
            `entries` (live), `expired` (awaiting purge), `users`, `signatures` and `spaces`
            (entry counts), `hits`, `oldest_created_at` and `newest_created_at`, `indexes` (the
            indexes this process has loaded: partition, kind, dimension, size, tombstones, source),
            counters of index builds and snapshot loads, rejects and writes, and `sqlite_bytes`
            (the whole shared file with its WAL), `index_bytes` (this table's snapshots) and
            `bytes_on_disk` (their sum).

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be read.
        """
        mine, mine_args = (
            (f"FROM {self.table} WHERE user_id = ?", [user_id])
            if user_id is not None
            else (f"FROM {self.table} WHERE 1", [])
        )
        where, args = self._live(mine, mine_args)
        with self._db.read() as conn:
            totals = conn.execute(
                "SELECT COUNT(*) AS entries, COUNT(DISTINCT user_id) AS users, "
                "COALESCE(SUM(hits), 0) AS hits, MIN(created_at) AS oldest, "
                f"MAX(created_at) AS newest {where}",
                args,
            ).fetchone()
            signatures = {
                r[0]: r[1]
                for r in conn.execute(
                    f"SELECT signature, COUNT(*) {where} GROUP BY signature", args
                )
            }
            spaces = {
                r[0]: r[1]
                for r in conn.execute(f"SELECT space, COUNT(*) {where} GROUP BY space", args)
            }
            (stored,) = conn.execute(f"SELECT COUNT(*) {mine}", mine_args).fetchone()
        with self._partitions_lock:
            parts = list(self._partitions.values())
        indexes = []
        for part in parts:
            if user_id is not None and part.key[0] != user_id:
                continue
            with part.lock:
                index = part.index
                if not part.loaded:
                    continue
                indexes.append(
                    {
                        "user_id": part.key[0],
                        "signature": part.key[1],
                        "space": part.key[2],
                        "kind": index.kind if index else None,
                        "dim": index.dim if index else None,
                        "size": index.size if index else 0,
                        "tombstones": len(index.tombstones) if index else 0,
                        "max_id": part.max_id,
                        "source": part.source,
                        "building": part.building,
                    }
                )
        sqlite_bytes = sum(
            _size(Path(f"{self.path}{suffix}")) for suffix in ("", "-wal", "-shm", "-journal")
        )
        index_bytes = (
            sum(_size(p) for p in self.index_dir.glob("*")) if self.index_dir.is_dir() else 0
        )
        with self._counters_lock:
            counters = dict(self._counters)
        return {
            "table": self.table,
            "entries": totals["entries"],
            "expired": stored - totals["entries"],
            "users": totals["users"],
            "signatures": signatures,
            "spaces": spaces,
            "hits": totals["hits"],
            "oldest_created_at": totals["oldest"],
            "newest_created_at": totals["newest"],
            "indexes": indexes,
            **counters,
            "sqlite_bytes": sqlite_bytes,
            "index_bytes": index_bytes,
            "bytes_on_disk": sqlite_bytes + index_bytes,
        }

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no index build or snapshot is queued or running; False on timeout."""
        with self._jobs_cv:
            return self._jobs_cv.wait_for(lambda: not self._queued and not self._running, timeout)

    # SQLite helpers

    def _cutoff(self) -> float | None:
        return self._clock() - self._ttl_s if self._ttl_s is not None else None

    def _live(self, sql: str, args: list[Any]) -> tuple[str, list[Any]]:
        """Add the TTL condition to a query that ends in a WHERE clause."""
        cutoff = self._cutoff()
        if cutoff is None:
            return sql, args
        return f"{sql} AND created_at >= ?", [*args, cutoff]

    def _purge_expired(self, conn: sqlite3.Connection, now: float) -> list[sqlite3.Row]:
        if self._ttl_s is None:
            return []
        return conn.execute(
            f"DELETE FROM {self.table} WHERE created_at < ? "
            "RETURNING id, user_id, signature, space",
            (now - self._ttl_s,),
        ).fetchall()

    def _fetch(
        self, conn: sqlite3.Connection, key: _Key, ids: list[int], cutoff: float | None
    ) -> dict[int, Entry]:
        """Return the live rows among `ids` that belong to the partition `key`."""
        found: dict[int, Entry] = {}
        ttl = " AND created_at >= ?" if cutoff is not None else ""
        for chunk in _chunks(ids, _FETCH_CHUNK):
            args: list[Any] = [*chunk, *key]
            if cutoff is not None:
                args.append(cutoff)
            rows = conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM {self.table} WHERE id IN "
                f"({','.join('?' * len(chunk))}) AND user_id=? AND signature=? AND space=?{ttl}",
                args,
            )
            for row in rows:
                found[row["id"]] = _entry(row)
        return found

    def _rows_after(self, conn: sqlite3.Connection, key: _Key, after: int) -> _Rows:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                f"SELECT id, dim, vector FROM {self.table} "
                "WHERE user_id=? AND signature=? AND space=? AND id > ? ORDER BY id",
                (*key, after),
            )
        ]

    def _store_id_of(self, conn: sqlite3.Connection) -> str:
        if self._store_id is None:
            row = conn.execute(
                f"SELECT value FROM {_META_TABLE} WHERE name = ?", (f"{self.table}.store_id",)
            ).fetchone()
            self._store_id = str(row[0])
        return self._store_id

    # Partitions

    def _partition(self, key: _Key) -> _Partition:
        with self._partitions_lock:
            part = self._partitions.get(key)
            if part is None:
                part = self._partitions[key] = _Partition(key)
            self._partitions.move_to_end(key)
            # Memory grows with every user otherwise. A dropped partition is rebuilt from its
            # snapshot or SQLite when its user comes back; one mid-build is kept until it ends.
            idle = [k for k, p in self._partitions.items() if not p.building and k != key]
            for old in idle[: max(0, len(self._partitions) - MAX_LOADED_PARTITIONS)]:
                del self._partitions[old]
            return part

    def _sync(self, part: _Partition, conn: sqlite3.Connection) -> None:
        """Load the partition's index on first use, then add rows committed since."""
        if not part.loaded:
            with part.lock:
                if not part.loaded:
                    self._load(part, conn)
                    part.loaded = True
        # Read outside the lock; rows another thread added meanwhile are skipped under it.
        rows = self._rows_after(conn, part.key, part.max_id)
        if not rows:
            return
        with part.lock:
            index = part.index
            fresh = [r for r in rows if r[0] > part.max_id]
            if not fresh:
                return
            if index is None or index.size == 0:
                index = part.index = _Index("flat", fresh[0][1])
            if any(r[1] != index.dim for r in fresh):
                mismatch = True
            else:
                mismatch = False
                index.add(*_vectors(fresh, index.dim))
                part.added_since_snapshot += len(fresh)
        if mismatch:
            # Only possible once every older entry is gone (put refuses mixed dimensions): the
            # partition now holds another embedding's vectors; build it afresh.
            self._rebuild(part, "flat")

    def _load(self, part: _Partition, conn: sqlite3.Connection) -> None:
        """Give a partition its index: from its snapshot if valid, else an exact build."""
        index = self._read_snapshot(part.key, conn)
        if index is not None:
            part.index, part.source, part.added_since_snapshot = index, "snapshot", 0
            self._count("snapshot_loads")
            return
        # Flat even when large: it is built in a copy, and HNSW follows in the background.
        index = self._build(conn, part.key, "flat")
        part.index, part.source = index, "sqlite"
        part.added_since_snapshot = index.size if index is not None else 0

    def _build(self, conn: sqlite3.Connection, key: _Key, kind: Kind | None) -> _Index | None:
        """Build an index of the partition from SQLite; `kind` None picks one by size."""
        top = conn.execute(
            f"SELECT id, dim FROM {self.table} WHERE user_id=? AND signature=? AND space=? "
            "ORDER BY id DESC LIMIT 1",
            key,
        ).fetchone()
        if top is None:
            return None
        dim = int(top["dim"])
        if kind is None:
            (count,) = conn.execute(
                f"SELECT COUNT(*) FROM {self.table} "
                "WHERE user_id=? AND signature=? AND space=? AND dim=?",
                (*key, dim),
            ).fetchone()
            kind = "hnsw" if count > self._flat_limit else "flat"
        index = _Index(kind, dim)
        after = 0
        while True:
            # Keyset pages, each its own short read: a long HNSW build never holds a read
            # transaction open (which would stop WAL checkpoints).
            rows = [
                (r[0], dim, r[1])
                for r in conn.execute(
                    f"SELECT id, vector FROM {self.table} WHERE user_id=? AND signature=? "
                    "AND space=? AND dim=? AND id > ? ORDER BY id LIMIT ?",
                    (*key, dim, after, _LOAD_PAGE),
                )
            ]
            if not rows:
                break
            index.add(*_vectors(rows, dim))
            after = rows[-1][0]
        # Rows of an older dimension below the newest row are leftovers: never loaded.
        index.max_id = max(index.max_id, int(top["id"]))
        self._count("index_builds")
        return index

    def _rebuild(self, part: _Partition, kind: Kind | None) -> bool:
        """Replace the partition's index with one built from SQLite; False if one is underway.

        The current index serves searches during the build; rows committed and ids found dead
        meanwhile are applied to the new index before the swap.
        """
        with part.lock:
            if part.building:
                return False
            part.building, part.dead_log = True, []
        try:
            with self._db.read() as conn:
                for _ in range(3):
                    built = self._build(conn, part.key, kind)
                    with part.lock:
                        tail = self._rows_after(conn, part.key, built.max_id if built else 0)
                        if built is None and tail:
                            built = _Index("flat", tail[0][1])
                        if built is not None and any(r[1] != built.dim for r in tail):
                            continue  # the dimension changed during the build: build again
                        if built is not None:
                            built.add(*_vectors(tail, built.dim))
                            built.drop(part.dead_log or [])
                        part.index, part.source = built, "sqlite"
                        part.added_since_snapshot = built.size if built is not None else 0
                        part.loaded = True
                        return True
            logger.warning(
                "Vector index %s%s kept changing dimension; not rebuilt", self.table, part.key
            )
            return False
        finally:
            with part.lock:
                part.building, part.dead_log = False, None

    def _drop(self, part: _Partition, ids: Iterable[int]) -> None:
        ids = list(ids)
        with part.lock:
            if part.dead_log is not None:
                part.dead_log.extend(ids)
            if part.index is not None:
                part.index.drop(ids)

    def _forget(self, rows: Iterable[sqlite3.Row]) -> None:
        """Apply deletions this process made to the indexes it has loaded."""
        by_key: dict[_Key, list[int]] = {}
        for row in rows:
            by_key.setdefault((row["user_id"], row["signature"], row["space"]), []).append(
                row["id"]
            )
        for key, ids in by_key.items():
            with self._partitions_lock:
                part = self._partitions.get(key)
            if part is not None:
                self._drop(part, ids)
                self._maintain(part)

    def _maintain(self, part: _Partition) -> None:
        """Start the rebuild, index switch or snapshot the partition's state calls for."""
        with part.lock:
            index = part.index
            if index is None or part.building or time.monotonic() < part.retry_after:
                return
            shrink = index.kind == "hnsw" and len(index.tombstones) > REBUILD_FRACTION * index.size
            grow = index.kind == "flat" and index.size > self._flat_limit
            snapshot = part.added_since_snapshot >= self._snapshot_every
            small = index.live <= self._flat_limit
        if shrink and small:
            # Cheap enough to do now, and it ends the tombstones at once.
            with self._guarded(part):
                if self._rebuild(part, "flat"):
                    self._maintain(part)
        elif shrink or grow:
            self._schedule("build", part)
        elif snapshot:
            self._schedule("snapshot", part)

    @contextlib.contextmanager
    def _guarded(self, part: _Partition) -> Iterator[None]:
        """Log and back off on failures of work no caller asked for."""
        try:
            yield
        except Exception:
            logger.exception("Vector index maintenance failed for %s%s", self.table, part.key)
            with part.lock:
                part.retry_after = time.monotonic() + _RETRY_S

    # Background work

    def _schedule(self, job: str, part: _Partition) -> None:
        token = (job, part.key)
        with self._jobs_cv:
            if token in self._queued:
                return
            self._queued.add(token)
            if self._background:
                self._jobs.append((job, part))
                if self._worker is None:
                    self._worker = threading.Thread(
                        target=self._work, name=f"vector-store-{self.table}", daemon=True
                    )
                    self._worker.start()
                return
        self._run(job, part)

    def _work(self) -> None:
        while True:
            with self._jobs_cv:
                if not self._jobs:
                    self._worker = None
                    return
                job, part = self._jobs.popleft()
            self._run(job, part)

    def _run(self, job: str, part: _Partition) -> None:
        with self._jobs_cv:
            self._running += 1
        try:
            done = False
            try:
                with self._guarded(part):
                    if job == "build":
                        self._rebuild(part, None)
                    else:
                        self._write_snapshot(part)
                    done = True
            finally:
                with self._jobs_cv:
                    self._queued.discard((job, part.key))
            if done:
                # Still counted as running: `wait_idle` cannot return before the follow-up (a
                # snapshot after a build) is queued, and a follow-up of this job's own kind is
                # not mistaken for this job and dropped.
                with self._guarded(part):
                    self._maintain(part)
        finally:
            with self._jobs_cv:
                self._running -= 1
                self._jobs_cv.notify_all()

    # Snapshots

    def _snapshot_path(self, key: _Key) -> Path:
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
        return self.index_dir / f"{digest}.faiss"

    def _write_snapshot(self, part: _Partition) -> None:
        final = self._snapshot_path(part.key)
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_temps(final)
        with self._db.read() as conn:
            store_id = self._store_id_of(conn)
        tmp = final.with_name(f"{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as f:
                crc, length = 0, 0

                def write(chunk: bytes) -> None:
                    nonlocal crc, length
                    crc = zlib.crc32(chunk, crc)
                    length += len(chunk)
                    f.write(chunk)

                with part.lock:
                    index = part.index
                    if index is None or index.size == 0 or part.building:
                        return
                    faiss.write_index(index.faiss, _IO_WRITER(write))
                    header = {
                        "format": _FORMAT,
                        "store_id": store_id,
                        "table": self.table,
                        "partition": list(part.key),
                        "kind": index.kind,
                        "dim": index.dim,
                        "size": index.size,
                        "max_id": index.max_id,
                        "index_bytes": length,
                        "crc32": crc,
                    }
                    # Counted as written even if the write fails below: a full disk is not
                    # retried on every search, only after as many new entries again.
                    part.added_since_snapshot = 0
                trailer = json.dumps(header).encode()
                f.write(trailer + len(trailer).to_bytes(4, "little") + _MAGIC)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            _fsync_dir(final.parent)
            self._count("snapshot_writes")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def _read_snapshot(self, key: _Key, conn: sqlite3.Connection) -> _Index | None:
        """Return the partition's snapshot reconciled with SQLite, or None if absent or unusable."""
        path = self._snapshot_path(key)
        try:
            with open(path, "rb") as f:
                index = self._parse_snapshot(f, key, conn)
            index = self._reconcile(index, key, conn)
        except FileNotFoundError:
            return None
        except _Unusable as exc:
            logger.info("Ignoring index snapshot %s: %s", path, exc)
            self._count("snapshot_rejects")
            return None
        return index

    def _parse_snapshot(self, f: Any, key: _Key, conn: sqlite3.Connection) -> _Index:
        try:
            size = os.fstat(f.fileno()).st_size
            if size < _TRAILER_LEN:
                raise _Unusable("too short")
            f.seek(size - _TRAILER_LEN)
            tail = f.read(_TRAILER_LEN)
            header_len = int.from_bytes(tail[:4], "little")
            if tail[4:] != _MAGIC or header_len > size - _TRAILER_LEN:
                raise _Unusable("no trailer")
            f.seek(size - _TRAILER_LEN - header_len)
            header = json.loads(f.read(header_len))
            if not isinstance(header, dict):
                raise _Unusable("no header")
            expected = {
                "format": _FORMAT,
                "store_id": self._store_id_of(conn),
                "table": self.table,
                "partition": list(key),
                "index_bytes": size - _TRAILER_LEN - header_len,
            }
            for field, value in expected.items():
                if header.get(field) != value:
                    raise _Unusable(f"{field} is {header.get(field)!r}, expected {value!r}")
            kind, dim, count = header["kind"], int(header["dim"]), int(header["size"])
            if kind not in ("flat", "hnsw"):
                raise _Unusable(f"unknown kind {kind!r}")
            # Check every byte before FAISS parses any: a damaged length field could otherwise
            # make it allocate or read garbage.
            f.seek(0)
            crc, left = 0, header["index_bytes"]
            while left:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    raise _Unusable("truncated")
                crc, left = zlib.crc32(chunk, crc), left - len(chunk)
            if crc != header["crc32"]:
                raise _Unusable("checksum mismatch")
            f.seek(0)
            # Read from the same open file, not the path: a snapshot renamed over this one
            # meanwhile cannot be mixed in.
            loaded = faiss.read_index(_IO_READER(f.read))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, MemoryError) as exc:
            raise _Unusable(f"unreadable ({type(exc).__name__}: {exc})") from exc
        inner = (
            faiss.downcast_index(loaded.index) if isinstance(loaded, faiss.IndexIDMap2) else None
        )
        wanted = faiss.IndexFlatIP if kind == "flat" else faiss.IndexHNSWFlat
        if (
            not isinstance(inner, wanted)
            or inner.metric_type != faiss.METRIC_INNER_PRODUCT
            or loaded.d != dim
            or loaded.ntotal != count
        ):
            raise _Unusable("index does not match its header")
        index = _Index(kind, dim, loaded)
        index.max_id = int(header["max_id"])
        return index

    def _reconcile(self, index: _Index, key: _Key, conn: sqlite3.Connection) -> _Index:
        """Tombstone the snapshot's entries SQLite no longer has; reject one that lacks rows."""
        rows = conn.execute(
            f"SELECT id, dim FROM {self.table} "
            "WHERE user_id=? AND signature=? AND space=? AND id <= ? ORDER BY id",
            (*key, index.max_id),
        ).fetchall()
        stored = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if any(r[1] != index.dim for r in rows):
            raise _Unusable("the partition now holds vectors of another dimension")
        held = index.ids().copy()
        if np.setdiff1d(stored, held, assume_unique=True).size:
            raise _Unusable("rows the snapshot covers are missing from it")
        live = np.intersect1d(stored, held, assume_unique=True)
        picks = {int(live[0]), int(live[-1])} if live.size else set()
        if live.size > 2:
            picks |= {int(i) for i in np.random.default_rng().choice(live, _SPOT_CHECKS - 2)}
        for entry_id in picks:
            (blob,) = conn.execute(
                f"SELECT vector FROM {self.table} WHERE id = ?", (entry_id,)
            ).fetchone()
            if not np.array_equal(index.faiss.reconstruct(entry_id), np.frombuffer(blob, "<f4")):
                raise _Unusable(f"vector {entry_id} differs from the database")
        index.drop(np.setdiff1d(held, stored, assume_unique=True).tolist())
        return index

    def _count(self, counter: str) -> None:
        with self._counters_lock:
            self._counters[counter] += 1


class _Unusable(Exception):
    """A snapshot that must be ignored (and the partition rebuilt from SQLite)."""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_abandoned_temps(final: Path) -> None:
    """Delete temporary snapshot files left by killed processes (or stuck for too long)."""
    for tmp in final.parent.glob(f"{final.name}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[-3])
            age = time.time() - tmp.stat().st_mtime
        except (ValueError, IndexError, OSError):
            continue
        if age > _STALE_TEMP_S or not _alive(pid):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True
