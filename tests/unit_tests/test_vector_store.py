"""The FAISS + SQLite vector store: lookups, partitions, deletes, TTL, LRU, indexes, snapshots."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from graph.vector_store import OVERFETCH, Entry, VectorStore

DIM = 16
Vectors = npt.NDArray[np.float32]


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def vectors(n: int, seed: int = 0, dim: int = DIM) -> Vectors:
    """Random vectors, deliberately not unit length: the store normalizes them."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x * rng.uniform(0.5, 3.0, size=(n, 1)).astype(np.float32)


def cosine_top(x: Vectors, ids: list[int], query: Vectors, k: int) -> list[tuple[int, float]]:
    """The exact answer: ids of `x` rows by cosine with `query`, best first."""
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    order = np.argsort(-scores, kind="stable")[:k]
    return [(ids[i], float(scores[i])) for i in order]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A directory in memory where there is one: every put fsyncs, and that is all these tests wait
    for on a disk. The crash tests run on a real disk."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    with tempfile.TemporaryDirectory(dir=shm, prefix="vector-store-test-") as path:
        yield Path(path)


@pytest.fixture
def make(home: Path) -> Callable[..., VectorStore]:
    def make(**kwargs: Any) -> VectorStore:
        kwargs.setdefault("table", "plan_entries")
        kwargs.setdefault("background", False)
        return VectorStore(home / "cache.sqlite", home / "index", **kwargs)

    return make


def put(
    store: VectorStore,
    i: int,
    vector: Any,
    *,
    user: str = "u",
    sig: str = "sig",
    space: str = "m",
    template: str | None = None,
    run_id: str | None = None,
) -> int:
    return store.put(
        user,
        sig,
        f"k{i}",
        template=template,
        space=space,
        vector=vector,
        run_id=run_id or f"run-{i}",
        payload={"i": i, "plan": {"steps": [i]}},
    )


def put_all(store: VectorStore, x: Vectors, **kwargs: Any) -> list[int]:
    return [put(store, i, v, **kwargs) for i, v in enumerate(x)]


def found(store: VectorStore, query: Any, k: int, **kwargs: Any) -> list[int]:
    user, sig, space = kwargs.get("user", "u"), kwargs.get("sig", "sig"), kwargs.get("space", "m")
    return [e.id for e, _ in store.search(user, sig, space, query, k)]


def index_info(store: VectorStore) -> dict[str, Any]:
    (info,) = store.stats()["indexes"]
    return info  # type: ignore[no-any-return]


# Exact lookups


def test_get_returns_the_entry_for_its_key_only(make: Callable[..., VectorStore]) -> None:
    clock = Clock()
    store = make(clock=clock)
    entry_id = put(store, 1, [1.0, 0.0], template="what is <n>")
    entry = store.get("u", "sig", "k1")
    assert entry == Entry(
        id=entry_id,
        user_id="u",
        signature="sig",
        key="k1",
        template="what is <n>",
        run_id="run-1",
        payload={"i": 1, "plan": {"steps": [1]}},
        created_at=1_000.0,
        last_used=1_000.0,
        hits=0,
    )
    assert store.get("u", "sig", "k2") is None
    assert store.get("other-user", "sig", "k1") is None
    assert store.get("u", "other-sig", "k1") is None


def test_with_template_is_most_recently_used_first(make: Callable[..., VectorStore]) -> None:
    clock = Clock()
    store = make(clock=clock)
    ids = {}
    for i in range(3):
        clock.now += 1
        ids[i] = put(store, i, [1.0, float(i)], template="T")
    put(store, 9, [1.0, 9.0], template="other")
    assert [e.id for e in store.with_template("u", "sig", "T")] == [ids[2], ids[1], ids[0]]
    clock.now += 1
    store.touch(ids[0])
    listed = store.with_template("u", "sig", "T")
    assert [e.id for e in listed] == [ids[0], ids[2], ids[1]]
    assert listed[0].hits == 1 and listed[0].last_used == clock.now
    assert store.with_template("u", "other-sig", "T") == []
    assert store.with_template("other-user", "sig", "T") == []


# Similarity


def test_search_is_best_first_with_numpy_cosines(make: Callable[..., VectorStore]) -> None:
    store = make()
    x = vectors(100)
    ids = put_all(store, x)
    for query in vectors(5, seed=1):
        got = store.search("u", "sig", "m", query, 10)
        expected = cosine_top(x, ids, query, 10)
        assert [e.id for e, _ in got] == [i for i, _ in expected]
        assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)
        # Scale does not matter: queries are normalized too.
        assert found(store, query * 7.5, 10) == [i for i, _ in expected]
    (entry, score) = store.search("u", "sig", "m", x[42], 1)[0]
    assert (
        entry.id == ids[42] and entry.payload["i"] == 42 and score == pytest.approx(1.0, abs=1e-5)
    )


def test_zero_vectors_stay_zero(make: Callable[..., VectorStore]) -> None:
    store = make()
    put(store, 1, [0.0, 0.0, 0.0])
    put(store, 2, [0.0, 0.0, 2.0])
    got = store.search("u", "sig", "m", [0.0, 0.0, 0.0], 5)
    assert sorted((e.key, s) for e, s in got) == [("k1", 0.0), ("k2", 0.0)]
    assert store.search("u", "sig", "m", [0.0, 0.0, 1.0], 1)[0][1] == pytest.approx(1.0)


def test_partitions_never_mix(make: Callable[..., VectorStore]) -> None:
    store = make()
    v = vectors(1)[0]
    mine = put(store, 0, v)
    others = {
        "user": put(store, 1, v, user="someone-else"),
        "sig": put(store, 2, v, sig="older-planner"),
        "space": put(store, 3, v, space="other-model"),
        "space-dim": put(store, 4, np.ones(2 * DIM), space="bigger-model"),
    }
    assert found(store, v, 10) == [mine]
    assert found(store, v, 10, user="someone-else") == [others["user"]]
    assert found(store, v, 10, sig="older-planner") == [others["sig"]]
    assert found(store, v, 10, space="other-model") == [others["space"]]
    assert found(store, np.ones(2 * DIM), 10, space="bigger-model") == [others["space-dim"]]
    assert found(store, v, 10, space="never-used") == []
    # Exact lookups ignore the space.
    assert store.get("u", "sig", "k3") is not None


def test_put_replaces_the_entry_with_the_same_key(make: Callable[..., VectorStore]) -> None:
    store = make()
    first, second = vectors(2)
    put(store, 99, vectors(1, seed=5)[0])
    old = put(store, 1, first)
    assert found(store, first, 1) == [old]  # the old vector is in the index now
    new = store.put(
        "u", "sig", "k1", template=None, space="m", vector=second, run_id="run-2", payload={"v": 2}
    )
    assert new != old
    entry = store.get("u", "sig", "k1")
    assert entry is not None and entry.id == new and entry.payload == {"v": 2}
    assert old not in found(store, first, 10)
    assert found(store, second, 1) == [new]
    assert store.stats()["entries"] == 2


def test_search_validates_its_input(make: Callable[..., VectorStore]) -> None:
    store = make()
    put(store, 1, np.ones(DIM))
    with pytest.raises(ValueError, match="dimensions"):
        store.search("u", "sig", "m", np.ones(DIM + 1), 3)
    with pytest.raises(ValueError, match="finite"):
        store.search("u", "sig", "m", [float("nan")] * DIM, 3)
    with pytest.raises(ValueError, match="non-empty"):
        store.search("u", "sig", "m", [], 3)
    assert store.search("u", "sig", "m", np.ones(DIM), 0) == []


def test_dimension_mismatch_is_refused(make: Callable[..., VectorStore]) -> None:
    store = make()
    put(store, 1, np.ones(DIM))
    with pytest.raises(ValueError, match=f"has {DIM + 1} dimensions .* have {DIM}"):
        put(store, 2, np.ones(DIM + 1))
    assert store.get("u", "sig", "k2") is None
    put(store, 2, np.ones(DIM + 1), space="another-model")  # another space may differ
    with pytest.raises(ValueError, match="finite"):
        put(store, 3, [1.0, float("inf")])
    with pytest.raises(ValueError, match="JSON"):
        store.put(
            "u",
            "sig",
            "k4",
            template=None,
            space="m",
            vector=np.ones(DIM),
            run_id="r",
            payload={"x": object()},
        )


# Deletes


def test_delete_delete_runs_and_clear(make: Callable[..., VectorStore]) -> None:
    store = make(snapshot_every=5)
    x = vectors(12)
    a = put_all(store, x[:6])
    b = [put(store, 10 + i, v, user="bob", run_id=f"run-{i}") for i, v in enumerate(x[6:])]
    assert len(found(store, x[0], 20)) == 6 and len(found(store, x[0], 20, user="bob")) == 6
    assert store.stats()["snapshot_writes"] == 2

    assert store.delete(a[0]) is True
    assert store.delete(a[0]) is False
    assert a[0] not in found(store, x[0], 20) and store.get("u", "sig", "k0") is None

    # run-1 and run-2 created entries of both users.
    assert store.delete_runs(["run-1", "run-2", "run-unknown"]) == 4
    assert set(found(store, x[0], 20)) == {a[3], a[4], a[5]}
    assert set(found(store, x[0], 20, user="bob")) == {b[0], b[3], b[4], b[5]}
    assert store.delete_runs([]) == 0

    assert store.clear("bob") == 4
    assert found(store, x[0], 20, user="bob") == [] and store.stats("bob")["entries"] == 0
    assert len(found(store, x[0], 20)) == 3
    assert store.clear() == 3
    assert found(store, x[0], 20) == [] and store.stats()["entries"] == 0
    assert list(store.index_dir.glob("*.faiss")) == []  # emptied partitions lose their snapshots


def test_copy_users_gives_a_user_live_copies_that_forget_with_their_runs(
    make: Callable[..., VectorStore],
) -> None:
    clock = Clock(1_000.0)
    store = make(clock=clock, ttl_s=100.0)
    x = vectors(5)
    put(store, 0, x[0], user="a", run_id="run-0")
    put(store, 1, x[1], user="a", run_id="run-1")
    clock.now = 1_090.0
    put(store, 1, x[2], user="b", run_id="run-2")  # the same key as a's run-1, newer
    put(store, 3, x[3], user="b", run_id="run-3")
    own = put(store, 3, x[4], user="t", run_id="run-4")  # the target already has key k3
    clock.now = 1_101.0  # a's entries (created at 1000) are past the TTL: not copied

    assert store.copy_users(["b", "a", "b", "t"], "t") == 1
    entries = {e.key: e for e in (store.get("t", "sig", f"k{i}") for i in range(4)) if e}
    assert set(entries) == {"k1", "k3"}
    assert entries["k1"].run_id == "run-2" and entries["k3"].id == own
    hits = store.search("t", "sig", "m", x[2], 5)
    assert [e.run_id for e, _ in hits][0] == "run-2"
    assert store.get("b", "sig", "k1") is not None  # the source keeps its entry

    assert store.delete_runs(["run-2"]) == 2  # the copy goes with its run
    assert store.get("t", "sig", "k1") is None and store.copy_users([], "t") == 0


# TTL and LRU


def test_ttl_hides_then_purges_expired_entries(make: Callable[..., VectorStore]) -> None:
    clock = Clock(1_000.0)
    store = make(clock=clock, ttl_s=100.0)
    x = vectors(3)
    old = put(store, 0, x[0], template="T")
    clock.now = 1_050.0
    mid = put(store, 1, x[1], template="T")
    assert set(found(store, x[0], 5)) == {old, mid}  # both in the index

    clock.now = 1_100.0  # exactly the TTL: still live
    assert store.get("u", "sig", "k0") is not None
    clock.now = 1_100.5
    assert store.get("u", "sig", "k0") is None
    assert [e.id for e in store.with_template("u", "sig", "T")] == [mid]
    assert found(store, x[0], 5) == [mid]
    stats = store.stats()
    assert stats["entries"] == 1 and stats["expired"] == 1

    newest = put(store, 2, x[2])  # a put purges
    assert store.stats()["expired"] == 0 and store.expire() == 0
    clock.now = 1_150.5
    assert store.expire() == 1  # mid
    assert store.stats()["entries"] == 1 and found(store, x[1], 5) == [newest]


def test_lru_cap_evicts_least_recently_used_per_user(make: Callable[..., VectorStore]) -> None:
    clock = Clock()
    store = make(clock=clock, max_entries=3)
    x = vectors(6)

    def tick_put(i: int, **kwargs: Any) -> int:
        clock.now += 1
        return put(store, i, x[i], **kwargs)

    # The cap is per user, across signatures and spaces.
    a, b, c = tick_put(0), tick_put(1, sig="other-sig"), tick_put(2, space="other-space")
    for i in range(3):
        put(store, 10 + i, x[i], user="bob")
    assert found(store, x[0], 5) == [a]  # in the index now
    clock.now += 1
    store.touch(a)  # a is now more recent than b and c
    d = tick_put(3)
    assert found(store, x[1], 5, sig="other-sig") == []  # b: least recently used
    assert store.get("u", "other-sig", "k1") is None and store.stats("u")["entries"] == 3
    e = tick_put(4)
    assert found(store, x[2], 5, space="other-space") == []  # then c
    assert store.get("u", "sig", "k0") is not None  # the touched one stays
    assert set(found(store, x[0], 5)) == {a, d, e}
    assert b not in {a, d, e} and c not in {a, d, e}
    assert store.stats("bob")["entries"] == 3  # another user's cap


# Index types


def test_flat_switches_to_hnsw_and_stays_correct_after_deletes(
    make: Callable[..., VectorStore],
) -> None:
    store = make(flat_limit=50)
    x = vectors(150)
    ids = put_all(store, x)
    live = dict(zip(ids, x, strict=True))

    def exact(query: Vectors, k: int) -> list[int]:
        keys = list(live)
        return [i for i, _ in cosine_top(np.stack([live[i] for i in keys]), keys, query, k)]

    noise = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32) * 0.05
    assert [found(store, q, 1)[0] for q in x + noise] == ids
    info = index_info(store)
    assert info["kind"] == "hnsw" and info["size"] == 150

    # Tombstones: the query's 20 nearest neighbours go, the next ones must come back.
    query = vectors(1, seed=9)[0]
    for entry_id in exact(query, 20):
        assert store.delete(entry_id)
        del live[entry_id]
    assert index_info(store)["tombstones"] == 20  # below the rebuild fraction
    assert found(store, query, 5) == exact(query, 5)

    # Past 20 % tombstones the partition is rebuilt without them.
    for entry_id in list(live)[:25]:
        store.delete(entry_id)
        del live[entry_id]
    info = index_info(store)
    assert info["kind"] == "hnsw" and info["tombstones"] < 20 and info["size"] < 150
    assert found(store, query, 5) == exact(query, 5)

    # Few entries left: back to an exact flat index.
    for entry_id in list(live)[:75]:
        store.delete(entry_id)
        del live[entry_id]
    info = index_info(store)
    assert info["kind"] == "flat" and info["size"] == len(live) == 30
    assert found(store, query, 30) == exact(query, 30)


def test_hnsw_builds_in_the_background(make: Callable[..., VectorStore]) -> None:
    store = make(flat_limit=30, background=True)
    x = vectors(100)
    ids = put_all(store, x)
    # Served exactly by a flat index until the HNSW one is ready, then by HNSW.
    assert found(store, x[7], 1) == [ids[7]]
    assert store.wait_idle(timeout=30)
    assert found(store, x[8], 1) == [ids[8]]
    assert index_info(store)["kind"] == "hnsw"
    assert [found(store, v, 1)[0] for v in x] == ids


@pytest.mark.parametrize("flat_limit", [1_000, 10], ids=["flat", "hnsw"])
def test_nearest_neighbours_deleted_elsewhere_are_skipped(
    make: Callable[..., VectorStore], flat_limit: int
) -> None:
    server, cli = make(flat_limit=flat_limit), make(flat_limit=flat_limit)
    x = vectors(60)
    ids = put_all(server, x)
    query = vectors(1, seed=4)[0]
    ranked = [i for i, _ in cosine_top(x, ids, query, 60)]
    assert found(server, query, 5) == ranked[:5]
    assert index_info(server)["kind"] == ("flat" if flat_limit > 60 else "hnsw")
    # More dead neighbours than the server over-fetches: it must ask FAISS again.
    gone = ranked[: 5 + OVERFETCH + 10]
    for entry_id in gone:
        assert cli.delete(entry_id)
    assert found(server, query, 5) == ranked[len(gone) : len(gone) + 5]


def test_a_small_partition_whose_nearest_entries_died_elsewhere(
    make: Callable[..., VectorStore],
) -> None:
    server, cli = make(), make()
    x = vectors(20)
    ids = put_all(server, x)
    query = vectors(1, seed=4)[0]
    ranked = [i for i, _ in cosine_top(x, ids, query, 20)]
    assert found(server, query, 5) == ranked[:5]
    for entry_id in ranked[:15]:  # every candidate of the first round, and more
        cli.delete(entry_id)
    assert found(server, query, 5) == ranked[15:]


# Processes and threads


def test_two_instances_see_each_others_writes(make: Callable[..., VectorStore]) -> None:
    server, cli = make(), make()
    x = vectors(4)
    assert found(server, x[0], 3) == []  # partition loaded, empty
    first = put(cli, 0, x[0])
    assert found(server, x[0], 3) == [first]
    second = put(cli, 1, x[1])
    assert found(server, x[1], 1) == [second]
    cli.delete(first)
    assert found(server, x[0], 3) == [second]
    replaced = put(cli, 1, x[2])  # same key, new vector
    assert found(server, x[1], 3) == [replaced]
    assert found(server, x[2], 1) == [replaced]
    assert server.get("u", "sig", "k1").id == replaced  # type: ignore[union-attr]


def test_tables_share_a_file_but_not_entries(make: Callable[..., VectorStore]) -> None:
    plans, examples = make(snapshot_every=1), make(table="examples", snapshot_every=1)
    x = vectors(2)
    p, e = put(plans, 0, x[0]), put(examples, 0, x[1])
    assert found(plans, x[1], 5) == [p] and found(examples, x[0], 5) == [e]
    assert plans.index_dir != examples.index_dir
    assert len(list(plans.index_dir.glob("*.faiss"))) == 1
    assert len(list(examples.index_dir.glob("*.faiss"))) == 1
    with pytest.raises(ValueError, match="Table name"):
        make(table="plans; DROP TABLE x")


def test_concurrent_puts_and_searches(make: Callable[..., VectorStore]) -> None:
    store = make(background=True, flat_limit=60, snapshot_every=64)
    per_thread, threads = 25, 8
    x = vectors(per_thread * threads)
    errors: list[BaseException] = []
    ids: dict[int, int] = {}
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for j in range(per_thread):
                i = t * per_thread + j
                ids[i] = put(store, i, x[i])
                # A thread sees its own put at once, whatever the others are doing.
                assert found(store, x[i], 1) == [ids[i]]
                store.search("u", "sig", "m", x[(i * 7) % len(x)], 5)
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert store.wait_idle(timeout=30)
    assert index_info(store)["kind"] == "hnsw"
    for i, entry_id in ids.items():
        assert store.get("u", "sig", f"k{i}").id == entry_id  # type: ignore[union-attr]
        assert found(store, x[i], 1) == [entry_id]


# Snapshots


@pytest.mark.parametrize("flat_limit", [1_000, 30], ids=["flat", "hnsw"])
def test_reopened_store_loads_the_snapshot(
    make: Callable[..., VectorStore], flat_limit: int
) -> None:
    first = make(flat_limit=flat_limit, snapshot_every=50)
    x = vectors(110)
    ids = put_all(first, x[:100])
    assert found(first, x[0], 1) == [ids[0]]
    stats = first.stats()
    assert stats["snapshot_writes"] == 1 and stats["index_bytes"] > 0
    # Written after the snapshot: a later row and a deletion.
    ids += [put(first, 100 + i, v) for i, v in enumerate(x[100:])]
    assert first.delete(ids[5])

    reopened = make(flat_limit=flat_limit, snapshot_every=50)
    assert found(reopened, x[1], 1) == [ids[1]]
    stats = reopened.stats()
    assert stats["snapshot_loads"] == 1 and stats["index_builds"] == 0
    info = index_info(reopened)
    assert info["source"] == "snapshot" and info["kind"] == ("flat" if flat_limit > 100 else "hnsw")
    for i, v in enumerate(x):
        if i != 5:
            assert found(reopened, v, 1) == [ids[i]]
    assert ids[5] not in found(reopened, x[5], 10)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip", "empty", "foreign"])
def test_damaged_snapshot_is_ignored_and_rebuilt(
    make: Callable[..., VectorStore], home: Path, damage: str
) -> None:
    first = make(snapshot_every=20)
    x = vectors(30)
    ids = put_all(first, x)
    found(first, x[0], 1)
    (snapshot,) = first.index_dir.glob("*.faiss")
    data = snapshot.read_bytes()
    if damage == "truncate":
        snapshot.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        snapshot.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif damage == "flip":
        middle = len(data) // 2
        snapshot.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
    elif damage == "empty":
        snapshot.write_bytes(b"")
    else:
        # The same partition, ids and table in another database, with other vectors.
        other = VectorStore(
            home / "other.sqlite",
            home / "other-index",
            table="plan_entries",
            snapshot_every=20,
            background=False,
        )
        put_all(other, vectors(30, seed=8))
        found(other, x[0], 1)
        (foreign,) = other.index_dir.glob("*.faiss")
        snapshot.write_bytes(foreign.read_bytes())

    reopened = make(snapshot_every=20)
    assert [found(reopened, v, 1)[0] for v in x] == ids
    stats = reopened.stats()
    assert stats["snapshot_rejects"] == 1 and stats["snapshot_loads"] == 0
    assert stats["index_builds"] == 1 and index_info(reopened)["source"] == "sqlite"
    # The rebuilt index was snapshotted again, and that snapshot is good.
    again = make(snapshot_every=20)
    assert found(again, x[3], 1) == [ids[3]] and again.stats()["snapshot_loads"] == 1


def test_snapshot_missing_rows_is_rejected(make: Callable[..., VectorStore]) -> None:
    first = make(snapshot_every=10)
    x = vectors(30)
    ids = put_all(first, x[:20])
    found(first, x[0], 1)
    (snapshot,) = first.index_dir.glob("*.faiss")
    stale = snapshot.read_bytes()
    ids += [put(first, 20 + i, v) for i, v in enumerate(x[20:])]
    found(first, x[0], 1)
    # A newer snapshot replaced by an older one that claims to cover rows it does not hold.
    old_max = index_info(first)["max_id"]
    assert old_max == ids[-1]
    snapshot.write_bytes(stale.replace(b'"max_id": 20', f'"max_id": {old_max}'.encode()))
    reopened = make(snapshot_every=10)
    assert [found(reopened, v, 1)[0] for v in x] == ids
    assert reopened.stats()["snapshot_rejects"] == 1


def test_stats(make: Callable[..., VectorStore]) -> None:
    clock = Clock()
    store = make(clock=clock)
    put(store, 0, np.ones(DIM))
    clock.now += 5
    put(store, 1, np.ones(DIM), sig="s2")
    put(store, 2, np.ones(DIM), user="bob")
    store.touch(store.get("u", "sig", "k0").id)  # type: ignore[union-attr]
    stats = store.stats()
    assert stats["entries"] == 3 and stats["users"] == 2 and stats["hits"] == 1
    assert stats["signatures"] == {"sig": 2, "s2": 1}
    assert stats["oldest_created_at"] == 1_000.0 and stats["newest_created_at"] == 1_005.0
    assert stats["sqlite_bytes"] > 0 and stats["bytes_on_disk"] >= stats["sqlite_bytes"]
    assert stats["indexes"] == []
    mine = store.stats("u")
    assert mine["entries"] == 2 and mine["users"] == 1 and mine["signatures"] == {"sig": 1, "s2": 1}


def test_idle_partitions_are_dropped_from_memory_and_come_back_whole(
    make: Callable[..., VectorStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    import graph.vector_store as vs

    monkeypatch.setattr(vs, "MAX_LOADED_PARTITIONS", 3)
    store = make()
    for user in range(5):
        store.put(
            f"u{user}",
            "s",
            "k",
            template=None,
            space="sp",
            vector=[1.0, 0.0],
            run_id="r",
            payload={},
        )
        assert store.search(f"u{user}", "s", "sp", [1.0, 0.0], 1)
    assert len(store.stats()["indexes"]) == 3
    found = store.search("u0", "s", "sp", [1.0, 0.0], 1)  # dropped, then rebuilt on demand
    assert [e.user_id for e, _ in found] == ["u0"]
