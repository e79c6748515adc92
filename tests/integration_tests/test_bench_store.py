"""Smoke tests of the lookup, memory and embedder benchmarks: quick runs, checked for correctness."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import embedders, lookup, memory
from bench.common import child_json
from graph.cache import SEMANTIC_CANDIDATES, readable
from graph.vector_store import VectorStore
from tests.bench_checks import check_section


@pytest.fixture(autouse=True)
def _scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The sections make their own temporary directories: keep them under this test's.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


SIGNATURE, SPACE = "bench-signature", "bench:random/384"


def search(store: VectorStore, query: np.ndarray, k: int = SEMANTIC_CANDIDATES) -> list[Any]:
    return store.search(lookup.USER_ID, SIGNATURE, SPACE, query, k)


def test_bulk_rows_are_entries_the_store_and_the_cache_can_serve(tmp_path: Path) -> None:
    vectors = lookup.random_unit_vectors(300, seed=7)
    ids = lookup.fill_store(tmp_path / "cache.sqlite", vectors, signature=SIGNATURE, space=SPACE)
    assert ids.tolist() == list(range(1, 301))
    store = lookup.open_store(tmp_path)
    stats = store.stats(user_id=lookup.USER_ID)
    assert stats["entries"] == 300 and stats["expired"] == 0  # within the cache's TTL
    assert stats["spaces"] == {SPACE: 300} and stats["signatures"] == {SIGNATURE: 300}
    naive = lookup.NaiveCache(ids, vectors)
    queries = np.vstack([lookup.random_unit_vectors(5, seed=8), vectors[[0, 123, 299]]])
    for query in queries:
        found = search(store, query)
        assert len(found) == SEMANTIC_CANDIDATES
        best_id, best_score = naive.best(query)
        assert found[0][0].id == best_id
        assert found[0][1] == pytest.approx(best_score, abs=1e-5)
        assert best_id == ids[int(np.argmax(vectors @ query))]
        assert readable(found[0][0]) is not None  # a payload the plan cache can read
    assert [e.id for e, _ in search(store, vectors[123], 1)] == [124]


def test_a_second_fill_appends_new_ids(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    kwargs: dict[str, Any] = {"signature": SIGNATURE, "space": SPACE}
    first = lookup.fill_store(path, lookup.random_unit_vectors(3, seed=1), key_prefix="a", **kwargs)
    second = lookup.fill_store(
        path, lookup.random_unit_vectors(2, seed=2), key_prefix="b", **kwargs
    )
    assert first.tolist() == [1, 2, 3] and second.tolist() == [4, 5]


def test_the_prepared_home_is_the_partition_a_runtime_searches(tmp_path: Path) -> None:
    prep = lookup.prepared_home(300)
    assert (prep.signature, prep.space) == lookup.runtime_partition(tmp_path)
    assert prep.space == "local:all-MiniLM-L6-v2-int8/384" and prep.kind == "flat"
    assert lookup.prepared_home(300) is prep  # built once per process


def test_lookup_quick(tmp_path: Path) -> None:
    result = check_section(lookup, tmp_path)
    measured = result["data"]["measurements"]
    assert [(m["entries"], m["kind"]) for m in measured] == [
        (200, "flat"),
        (1_000, "hnsw"),
        (1_000, "flat"),
    ]
    for m in measured:
        total = sum(m["queries"].values())
        # Both timed the same rounds (2 in quick mode), interleaved.
        assert m["crane"]["n"] == m["naive"]["n"] == 2 * total
        assert m["crane"]["p50_ms"] > 0 and m["naive"]["p50_ms"] > 0
        assert m["ratio_p50"] is not None and m["ratio_p50"] > 0
        assert m["build_s"] > 0
        if m["kind"] == "flat":
            assert m["same_top_hit"] == m["queries"]  # exact search agrees with the naive loop
    hnsw = measured[1]
    assert hnsw["variant"] == "default" and hnsw["source"] == "snapshot"
    assert hnsw["reopen_s"] is not None


def test_memory_quick(tmp_path: Path) -> None:
    result = check_section(memory, tmp_path)
    data = result["data"]
    full, empty = data["children"]["full"], data["children"]["empty"]
    assert full["index"]["size"] >= memory.QUICK_ENTRIES
    assert full["index"]["source"] == "snapshot"
    assert full["index"]["signature"] == data["prepared"]["signature"] == full["signature"]
    assert full["index"]["space"] == data["prepared"]["space"]
    assert full["entries"] > memory.QUICK_ENTRIES
    assert empty["index"]["size"] == 0 and empty["entries"] == 1  # only its own run's plan
    assert full["answer"] == empty["answer"] == 4
    assert full["plan_source"] == "pattern"
    for child in (full, empty):
        assert child["peak_kib"] >= child["rss_end_kib"] > 0
    assert data["files"]["full"]["snapshot_bytes"] > 0
    assert (
        data["files"]["full"]["cache_sqlite_bytes"] > data["files"]["empty"]["cache_sqlite_bytes"]
    )


def test_a_failing_child_reports_its_error() -> None:
    with pytest.raises(RuntimeError, match="boom"):
        child_json("raise SystemExit('boom')", {})


def test_embedders_quick(tmp_path: Path) -> None:
    result = check_section(embedders, tmp_path)
    backends = result["data"]["backends"]
    assert set(backends) == {"hash", "local", "openai", "fastembed"}
    for name, m in backends.items():
        if "skipped" in m:
            assert name == "fastembed" and "skipped" in m["skipped"]
            continue
        assert m["load_ms"] > 0 and m["query"]["p50_ms"] > 0 and m["query"]["p95_ms"] > 0
        assert m["query"]["n"] == embedders.QUICK_REQUESTS
        assert m["p50_ratio"] > 0 and "load_ratio" not in m  # a ratio over ~0 ms means nothing
    assert backends["hash"]["dim"] == 256 and backends["local"]["dim"] == 384
    assert backends["openai"]["endpoint_requests"] == 1 + embedders.QUICK_REQUESTS
    assert "load / hash" not in result["columns"]
    rows = {row[0].split()[0]: row for row in result["rows"]}
    # load (ms), query p50 and p95 (ms), p50 / hash
    assert all(isinstance(cell, float) and cell > 0 for cell in rows["local"][1:5])
