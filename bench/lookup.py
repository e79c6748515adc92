"""Cache lookup scaling: Crane's FAISS-backed `VectorStore.search` against a naive Python cosine loop."""

from __future__ import annotations

import atexit
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench.common import figure, ms_stats, ratio, save, timed
from graph.cache import SEMANTIC_CANDIDATES
from graph.context import Context
from graph.db import SqliteFile
from graph.embeddings import embeddings_id
from graph.pattern_planner import plan_request
from graph.services import planner_signature
from graph.vector_store import FLAT_LIMIT, OVERFETCH, VectorStore, _schema
from tools.registry import build_registry
from tools.todo_store import TodoStore

TABLE = "plan_entries"
"""The plan cache's table (`graph.services.open_plan_stores`)."""

USER_ID = "default"
"""The user a runtime serves when a request names none."""

EMBEDDINGS = "local"
"""The default embedder, whose space a default runtime searches."""

DIM = 384
"""all-MiniLM-L6-v2's dimension, the default embedder's."""

SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (200, 1_000)
QUICK_FLAT_LIMIT = 500
"""Quick mode lowers the flat limit so its largest size also exercises HNSW."""

NEAR_COSINE = 0.8
"""Similarity of a near-duplicate query to its stored vector: a paraphrase, above the threshold."""

CACHE_TTL_S = Context().cache_ttl_s
"""The plan cache's default TTL: searches filter expired rows with it, as the cache's do."""

_TIE = 1e-5
"""Scores this close are a tie: FAISS and numpy round float32 dot products differently."""


def runtime_partition(home: Path) -> tuple[str, str]:
    """Return the planner signature and embedding space a default runtime at `home` searches.

    The signature hashes what the runtime's does (tool specs, prompts, rules); the space is
    `RequestVectors.space_of` for the default embedder's vectors.
    """
    signature = planner_signature(build_registry(TodoStore(home / "todos.sqlite")))
    return signature, f"{embeddings_id(EMBEDDINGS)}/{DIM}"


def random_unit_vectors(n: int, dim: int = DIM, *, seed: int) -> npt.NDArray[np.float32]:
    """Return `n` seeded random unit vectors of `dim` float32 components, one per row."""
    rows = np.random.default_rng(seed).standard_normal((n, dim))
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return np.ascontiguousarray(rows, dtype=np.float32)


def fill_store(
    path: Path,
    vectors: npt.NDArray[np.float32],
    *,
    signature: str,
    space: str,
    table: str = TABLE,
    user_id: str = USER_ID,
    key_prefix: str = "bench cached request",
) -> npt.NDArray[np.int64]:
    """Insert one cache entry per row of `vectors` straight into a `VectorStore` table.

    `put()` manages about 450 entries a second (a transaction, a purge and an LRU check each),
    so 100k entries would take minutes. This writes the rows `put()` would write, with the
    store's own schema, in one transaction: unit float32 vectors with their dimension, a payload
    the plan cache can read (`{"request", "plan"}`), no template, and `created_at` = `last_used`
    = now so the TTL keeps them. The WAL is checkpointed afterwards, so file sizes are steady.

    Args:
        path: The SQLite file (created with the store's schema if missing).
        vectors: Unit vectors, one row per entry.
        signature: The partition's planner signature.
        space: The partition's embedding space.
        table: The store's table.
        user_id: The partition's user.
        key_prefix: Keys are `"<key_prefix> <i>"`; they must not exist yet in the partition.

    Returns:
        The new rows' ids, in the order of `vectors`.
    """
    plan = plan_request("what is 2 + 2").plan
    assert plan is not None  # the rule planner reads this request
    plan_json = plan.model_dump()
    unit = np.ascontiguousarray(vectors, dtype="<f4")
    dim = int(unit.shape[1])
    now = time.time()

    def rows() -> Iterator[tuple[Any, ...]]:
        for i in range(unit.shape[0]):
            key = f"{key_prefix} {i}"
            payload = json.dumps({"request": key, "plan": plan_json})
            blob = unit[i].tobytes()
            yield (user_id, signature, key, None, space, dim, blob, f"bench-{i}", payload, now, now)

    db = SqliteFile(path, _schema(table))
    with db.write() as conn:
        (before,) = conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
        conn.executemany(
            f"INSERT INTO {table} (user_id, signature, key, template, space, dim, vector, run_id,"
            " payload, created_at, last_used, hits) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            rows(),
        )
        # AUTOINCREMENT ids only grow, so the new rows are those above the old maximum.
        ids = np.fromiter(
            (
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM {table} WHERE user_id=? AND signature=? AND space=? "
                    "AND id > ? ORDER BY id",
                    (user_id, signature, space, before),
                )
            ),
            dtype=np.int64,
        )
    with db.read() as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if ids.size != unit.shape[0]:
        raise AssertionError(f"inserted {unit.shape[0]} rows but found {ids.size}")
    return ids


def open_store(
    home: Path, flat_limit: int = FLAT_LIMIT, index_dir: Path | None = None
) -> VectorStore:
    """Return a plan cache store over `home` as a runtime opens it, but building synchronously.

    `background=False` runs the HNSW build and the snapshot write inside the search that
    calls for them, so they can be timed and nothing runs after the measurement.
    """
    return VectorStore(
        home / "cache.sqlite",
        index_dir or home / "cache-index",
        table=TABLE,
        ttl_s=CACHE_TTL_S,
        flat_limit=flat_limit,
        background=False,
    )


@dataclass(frozen=True)
class Prepared:
    """A data directory whose plan cache holds bulk-inserted entries and their index snapshot."""

    home: Path
    """Holds `cache.sqlite` and `cache-index/`, as a runtime's data directory does."""
    entries: int
    flat_limit: int
    signature: str
    space: str
    ids: npt.NDArray[np.int64]
    """The entries' ids, in the order of `random_unit_vectors(entries, seed=entries)`."""
    fill_s: float
    build_s: float
    """The first search: the index built from SQLite (for HNSW: a flat load, the HNSW build
    and the snapshot write)."""
    kind: str


_PREPARED: dict[tuple[int, int], Prepared] = {}
_scratch: list[tempfile.TemporaryDirectory[str]] = []


def prepared_home(entries: int, *, flat_limit: int = FLAT_LIMIT) -> Prepared:
    """Return a data directory whose plan cache holds `entries` entries, indexed and snapshotted.

    The entries are `random_unit_vectors(entries, seed=entries)` in the partition a default
    runtime searches. Kept for the rest of the process and shared: building HNSW over 100k
    vectors takes a minute or more on two cores, and the lookup and memory sections both need
    it. Callers must not write to the directory (copy it first).
    """
    key = (entries, flat_limit)
    found = _PREPARED.get(key)
    if found is not None and (found.home / "cache.sqlite").exists():
        return found
    if not _scratch:
        _scratch.append(tempfile.TemporaryDirectory(prefix="crane-bench-homes-"))
        atexit.register(_scratch[0].cleanup)
    home = Path(_scratch[0].name) / f"{entries}-{flat_limit}"
    home.mkdir()
    signature, space = runtime_partition(home)
    vectors = random_unit_vectors(entries, seed=entries)
    fill_ms, ids = timed(
        lambda: fill_store(home / "cache.sqlite", vectors, signature=signature, space=space)
    )
    store = open_store(home, flat_limit)
    build_ms, _ = timed(lambda: store.search(USER_ID, signature, space, vectors[0], 1))
    index = _index(store, signature, space)
    if index["size"] != entries:
        raise AssertionError(f"the store indexed {index['size']} of {entries} bulk-inserted rows")
    _PREPARED[key] = Prepared(
        home=home,
        entries=entries,
        flat_limit=flat_limit,
        signature=signature,
        space=space,
        ids=ids,
        fill_s=round(fill_ms / 1000, 3),
        build_s=round(build_ms / 1000, 3),
        kind=index["kind"],
    )
    return _PREPARED[key]


class NaiveCache:
    """The baseline: entries in a Python list, each compared with the query by a numpy dot.

    What a cache without a vector index does: loop over every entry, cosine similarity as the
    dot product of pre-normalized vectors, keep the best.

    Args:
        ids: The entries' ids.
        vectors: Their unit vectors (rows are kept as views, not copied).
    """

    def __init__(self, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> None:
        self.entries = list(zip(ids.tolist(), vectors, strict=True))

    def best(self, query: npt.NDArray[np.float32]) -> tuple[int, float]:
        """Return the id and cosine similarity of the entry closest to `query`."""
        q = (query / np.linalg.norm(query)).astype(np.float32)
        best_id, best_score = -1, -np.inf
        for entry_id, vector in self.entries:
            score = float(np.dot(vector, q))
            if score > best_score:
                best_id, best_score = entry_id, score
        return best_id, best_score


def _index(store: VectorStore, signature: str, space: str) -> dict[str, Any]:
    (index,) = [
        i for i in store.stats()["indexes"] if (i["signature"], i["space"]) == (signature, space)
    ]
    return dict(index)


@dataclass(frozen=True)
class _Query:
    """One query vector and what it should find."""

    vector: npt.NDArray[np.float32]
    kind: str
    """One of `random` (nothing close: a cache miss), `near` (a paraphrase), `exact` (a repeat)."""
    target: int | None
    """The id of the stored vector a "near" or "exact" query was made from."""


def _queries(
    vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], counts: dict[str, int], seed: int
) -> list[_Query]:
    """Return `counts[kind]` queries of each kind, in the order random, near, exact."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(vectors), size=counts["near"] + counts["exact"], replace=False)
    queries = [
        _Query(v, "random", None)
        for v in random_unit_vectors(counts["random"], vectors.shape[1], seed=seed)
    ]
    for n, i in enumerate(picks):
        stored = vectors[i].astype(np.float64)
        if n < counts["near"]:
            # Rotate the stored vector towards a random direction orthogonal to it.
            other = rng.standard_normal(stored.shape[0])
            other -= other.dot(stored) * stored
            other /= np.linalg.norm(other)
            mixed = NEAR_COSINE * stored + np.sqrt(1 - NEAR_COSINE**2) * other
            queries.append(_Query(mixed.astype(np.float32), "near", int(ids[i])))
        else:
            queries.append(_Query(vectors[i], "exact", int(ids[i])))
    return queries


def _lookup(store: VectorStore, prep: Prepared, vector: npt.NDArray[np.float32]) -> Any:
    """Search as `PlanCache`'s semantic level does: its k, in the runtime's partition."""
    return store.search(USER_ID, prep.signature, prep.space, vector, SEMANTIC_CANDIDATES)


def _agree(a: tuple[int, float], b: tuple[int, float]) -> bool:
    """Return whether two searches found the same best entry (or entries tied within `_TIE`)."""
    return a[0] == b[0] or abs(a[1] - b[1]) <= _TIE


def _measure(
    store: VectorStore,
    prep: Prepared,
    queries: list[_Query],
    naive: NaiveCache,
    rounds: int,
) -> dict[str, Any]:
    """Time `store.search` as the cache calls it and the naive loop, `rounds` times per query.

    The two take turns query by query, so both repeat each query as often (neither gets warmer
    caches) and drift on a shared machine hits both alike; which goes first alternates by round,
    so neither always runs just after the other has touched memory.
    """
    crane_ms: list[float] = []
    naive_ms: list[float] = []
    tops: list[tuple[int, float]] = []
    naive_tops: list[tuple[int, float]] = []
    for round_ in range(rounds):
        order = ("crane", "naive") if round_ % 2 == 0 else ("naive", "crane")
        for query in queries:
            searches = {
                "crane": partial(_lookup, store, prep, query.vector),
                "naive": partial(naive.best, query.vector),
            }
            timings = {name: timed(searches[name]) for name in order}
            (crane_elapsed, found), (naive_elapsed, best) = timings["crane"], timings["naive"]
            crane_ms.append(crane_elapsed)
            naive_ms.append(naive_elapsed)
            if round_ == 0:
                tops.append((found[0][0].id, found[0][1]))
                naive_tops.append(best)
    agreement: dict[str, list[int]] = {}
    for query, top, naive_top in zip(queries, tops, naive_tops, strict=True):
        counts = agreement.setdefault(query.kind, [0, 0])
        counts[0] += _agree(top, naive_top)
        counts[1] += 1
        if query.target is not None and naive_top[0] != query.target:
            raise AssertionError(f"the naive loop missed the stored vector of a {query.kind} query")
    return {"crane_ms": crane_ms, "naive_ms": naive_ms, "agreement": agreement}


def _measure_size(
    n: int, root: Path, *, flat_limit: int, counts: dict[str, int], rounds: int
) -> list[dict[str, Any]]:
    """Measure each index kind a reader should see at `n` entries against the naive loop."""
    prep = prepared_home(n, flat_limit=flat_limit)
    vectors = random_unit_vectors(n, seed=n)
    naive = NaiveCache(prep.ids, vectors)
    queries = _queries(vectors, prep.ids, counts, seed=n + 1)
    # A restarted runtime: a new store reads the snapshot the build wrote (if it was big enough).
    stores: list[tuple[str, VectorStore, float | None]] = [
        ("default", open_store(prep.home, flat_limit), prep.build_s)
    ]
    if n > flat_limit:
        # A second store over the same rows, with its own snapshots, that keeps the exact flat
        # index: what the default gives up in exactness and what it gains in speed.
        raised = open_store(prep.home, n, index_dir=root / f"index-{n}-flat")
        stores.append(("flat_limit raised", raised, None))
    rows: list[dict[str, Any]] = []
    for variant, store, build_s in stores:
        first_ms, _ = timed(partial(_lookup, store, prep, queries[0].vector))
        index = _index(store, prep.signature, prep.space)
        if index["size"] != n:
            raise AssertionError(f"the store indexed {index['size']} of {n} bulk-inserted rows")
        measured = _measure(store, prep, queries, naive, rounds)
        agreement = measured["agreement"]
        if index["kind"] == "flat" and any(a != t for a, t in agreement.values()):
            raise AssertionError(
                f"exact search and the naive loop disagree at {n} entries: {agreement}"
            )
        first_s: float | None = round(first_ms / 1000, 3)
        if build_s is None:  # this store's first search was its build, not a restart
            build_s, first_s = first_s, None
        rows.append(
            {
                "entries": n,
                "variant": variant,
                "kind": index["kind"],
                "source": index["source"],
                "fill_s": prep.fill_s,
                "build_s": build_s,
                "reopen_s": first_s,
                "crane": ms_stats(measured["crane_ms"]),
                "naive": ms_stats(measured["naive_ms"]),
                "queries": dict(counts),
                "same_top_hit": {k: a for k, (a, _) in agreement.items()},
                "crane_samples_ms": [round(v, 4) for v in measured["crane_ms"]],
                "naive_samples_ms": [round(v, 4) for v in measured["naive_ms"]],
            }
        )
    return rows


def sig3(value: float) -> float:
    """Return `value` to three significant digits, for a table (data keeps every digit)."""
    return float(f"{value:.3g}")


def _times(speedup: float | None) -> str:
    """Return "3.1x faster" for a naive/Crane ratio of 3.1, "1.3x slower" for 0.77."""
    if not speedup:
        return "not comparable"
    if speedup >= 1:
        return f"{speedup:g}x faster"
    return f"{1 / speedup:.2g}x slower"


def _row(m: dict[str, Any], flat_limit: int) -> list[Any]:
    label = m["kind"] + (" (default)" if m["entries"] > flat_limit else "")
    if m["variant"] != "default":
        label = f"{m['kind']} (flat_limit raised)"
    first = f"{m['build_s']}"
    if m["source"] == "snapshot":
        first += f" ({m['reopen_s']} from snapshot)"
    agree = ", ".join(f"{k} {m['same_top_hit'][k]}/{m['queries'][k]}" for k in m["queries"])
    return [
        f"{m['entries']:,}",
        label,
        first,
        sig3(m["crane"]["p50_ms"]),
        sig3(m["crane"]["p95_ms"]),
        sig3(m["naive"]["p50_ms"]),
        sig3(m["naive"]["p95_ms"]),
        m["ratio_p50"],
        m["ratio_p95"],
        agree,
    ]


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure lookups at each size: p50/p95 of Crane's search and of the naive loop.

    Args:
        quick: Tiny sizes (200 and 1,000 entries, HNSW from 500): a smoke test in seconds.

    Returns:
        The section's title, columns, rows, headline, notes and raw data.

    Raises:
        AssertionError: The stores did not index every row, or an exact index and the naive
            loop disagree on a top hit.
    """
    sizes = QUICK_SIZES if quick else SIZES
    flat_limit = QUICK_FLAT_LIMIT if quick else FLAT_LIMIT
    counts = (
        {"random": 4, "near": 4, "exact": 4} if quick else {"random": 20, "near": 10, "exact": 10}
    )
    rounds = 2 if quick else 3
    with tempfile.TemporaryDirectory(prefix="crane-bench-lookup-") as tmp:
        measured = [
            row
            for n in sizes
            for row in _measure_size(
                n, Path(tmp), flat_limit=flat_limit, counts=counts, rounds=rounds
            )
        ]
    for m in measured:
        m["ratio_p50"] = ratio(m["naive"]["p50_ms"], m["crane"]["p50_ms"])
        m["ratio_p95"] = ratio(m["naive"]["p95_ms"], m["crane"]["p95_ms"])
    largest = [m for m in measured if m["entries"] == sizes[-1]]
    default = next(m for m in largest if m["variant"] == "default")
    headline = (
        f"At {sizes[-1]:,} entries Crane's lookup ({default['kind']}, p50 "
        f"{default['crane']['p50_ms']:.2f} ms) is {_times(default['ratio_p50'])} than the naive "
        f"Python loop (p50 {default['naive']['p50_ms']:.1f} ms)"
    )
    exact_flat = next((m for m in largest if m["variant"] != "default"), None)
    if exact_flat is not None:
        headline += (
            f"; the exact flat index is {_times(exact_flat['ratio_p50'])} "
            f"(p50 {exact_flat['crane']['p50_ms']:.2f} ms)"
        )
    total = sum(counts.values())
    notes = [
        f"Entries: {', '.join(f'{n:,}' for n in sizes)} seeded random unit vectors of {DIM} "
        "dimensions (MiniLM's), bulk-inserted in one transaction into the plan cache's SQLite "
        "table, in the partition a default runtime searches (rows as put() writes them); random "
        "vectors, not real embeddings, because embedding 100k requests would take minutes.",
        f"Crane: VectorStore.search(user, signature, space, vector, k={SEMANTIC_CANDIDATES}) as "
        f"PlanCache's semantic level calls it, with the cache's TTL: FAISS asks for "
        f"k+{OVERFETCH} candidates, then their rows are read from SQLite (included in the time).",
        "Naive baseline: the same entries in a Python list, a loop over every entry computing "
        "cosine similarity as a numpy dot on pre-normalized float32 vectors and keeping the best; "
        "it reads nothing from SQLite, which favours it.",
        f"Queries ({total}): {counts['random']} random unit vectors (nothing close: cache "
        f"misses), {counts['near']} near-duplicates at cosine {NEAR_COSINE} to a stored vector "
        f"(paraphrases) and {counts['exact']} equal to one (repeats). Each query timed "
        f"{rounds} times on both, the two taking turns query by query (who goes first "
        "alternating by round), so neither repeats a query more often or runs on warmer "
        "caches; p50/p95 per lookup.",
        f"Index: flat (exact) up to flat_limit={flat_limit:,} entries, HNSW above it (the "
        "default); 'flat_limit raised' is a second store over the same rows that keeps the exact "
        "flat index. 'same top hit': queries whose best entry is the naive loop's, asserted for "
        "every flat row. HNSW is approximate: among random vectors, nearly equidistant in 384 "
        "dimensions, it often returns another entry of almost the same (low) similarity, which "
        "is a miss either way; it is near-duplicates and repeats that must be found.",
        "First search: the first lookup of a fresh store, which builds the index from SQLite "
        "(for HNSW: a flat load, the HNSW build and the snapshot write, synchronously with "
        "background=False); 'from snapshot' is a restarted store reading that snapshot, the one "
        "whose lookups are timed.",
    ]
    if quick:
        notes.append(
            f"Quick mode: tiny sizes with HNSW from {flat_limit} entries; not for quoting."
        )
    return {
        "title": "Cache lookup scaling",
        "columns": [
            "entries",
            "index",
            "first search (s)",
            "Crane p50 (ms)",
            "Crane p95 (ms)",
            "naive p50 (ms)",
            "naive p95 (ms)",
            "naive/Crane p50",
            "naive/Crane p95",
            "same top hit",
        ],
        "rows": [_row(m, flat_limit) for m in measured],
        "headline": headline,
        "notes": notes,
        "data": {
            "sizes": list(sizes),
            "flat_limit": flat_limit,
            "k": SEMANTIC_CANDIDATES,
            "dim": DIM,
            "near_cosine": NEAR_COSINE,
            "measurements": measured,
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Write lookup p50 against entries, log-log: Crane's default index, exact flat, naive loop."""
    measured = result["data"]["measurements"]
    default = [m for m in measured if m["variant"] == "default"]
    raised = [m for m in measured if m["variant"] != "default"]
    fig, ax = figure(result["title"], "cached entries", "lookup p50 (ms)")
    ax.plot(
        [m["entries"] for m in default],
        [m["crane"]["p50_ms"] for m in default],
        "o-",
        label="Crane (default index)",
    )
    if raised:
        ax.plot(
            [m["entries"] for m in raised],
            [m["crane"]["p50_ms"] for m in raised],
            "s",
            label="Crane, exact flat index",
        )
    ax.plot(
        [m["entries"] for m in default],
        [m["naive"]["p50_ms"] for m in default],
        "^--",
        label="naive Python loop",
    )
    for m in default:
        ax.annotate(
            m["kind"],
            (m["entries"], m["crane"]["p50_ms"]),
            textcoords="offset points",
            xytext=(4, -12),
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    save(fig, path)
