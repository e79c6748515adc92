"""A process killed mid-put or mid-snapshot loses at most its last entry, never the store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from graph.vector_store import VectorStore

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="SIGKILL and /proc/self/fd are Linux's"
)

ROOT = Path(__file__).resolve().parents[2]
DIM = 32

# Puts entries in a loop and prints each id once its put has returned (committed). In "snapshot"
# mode it also searches after each put, with a snapshot due every 50 new entries, and stops dead
# inside the second snapshot: the temporary file is written, not yet renamed over the first one.
CHILD = """
import os, sys, time
from pathlib import Path
import numpy as np
from graph import vector_store

root, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "snapshot":
    real_fsync, temps = os.fsync, []
    def fsync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".tmp"):
            temps.append(fd)
            if len(temps) == 2:
                print("snapshotting", flush=True)
                time.sleep(600)
        real_fsync(fd)
    vector_store.os.fsync = fsync
store = vector_store.VectorStore(
    root / "cache.sqlite", root / "index", table="plan_entries", snapshot_every=50, background=False
)
# Snapshot mode stops by itself if the second snapshot never comes (a failure, not a hang).
for i in range(100_000 if mode == "puts" else 400):
    vector = np.random.default_rng(i).standard_normal(DIM)
    entry_id = store.put(
        "u", "sig", f"k{i}", template=None, space="m", vector=vector, run_id=f"run-{i}",
        payload={"i": i},
    )
    print(i, entry_id, flush=True)
    if mode == "snapshot":
        store.search("u", "sig", "m", vector, 1)
""".replace("DIM", str(DIM))


def vector(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(DIM)


def run_and_kill(root: Path, mode: str, stop_after: int) -> dict[int, int]:
    """Run the child until it printed `stop_after` ids (or "snapshotting"), SIGKILL it.

    Returns {i: id} of every put the child reported committed.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
    )
    # A child that hangs must not hang the suite.
    guard = threading.Timer(60, child.kill)
    guard.start()
    printed: dict[int, int] = {}
    try:
        assert child.stdout is not None
        for line in child.stdout:
            if line.strip() == "snapshotting":
                break
            i, entry_id = map(int, line.split())
            printed[i] = entry_id
            if mode == "puts" and len(printed) == stop_after:
                break
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    finally:
        guard.cancel()
    assert child.returncode == -signal.SIGKILL, f"the child was not killed mid-loop: {err}"
    # Ids committed between our last read and the kill were printed too.
    for line in out.splitlines():
        if line.strip() and line.strip() != "snapshotting":
            i, entry_id = map(int, line.split())
            printed[i] = entry_id
    return printed


def check_all_found(store: VectorStore, printed: dict[int, int]) -> None:
    for i, entry_id in printed.items():
        entry = store.get("u", "sig", f"k{i}")
        assert entry is not None and entry.id == entry_id and entry.payload == {"i": i}
        ((best, score),) = store.search("u", "sig", "m", vector(i), 1)
        assert best.id == entry_id and score == pytest.approx(1.0, abs=1e-5)


def test_kill_mid_put_loses_at_most_the_entry_in_flight(tmp_path: Path) -> None:
    printed = run_and_kill(tmp_path, "puts", stop_after=120)
    assert len(printed) >= 120 and sorted(printed) == list(range(len(printed)))

    store = VectorStore(
        tmp_path / "cache.sqlite", tmp_path / "index", table="plan_entries", background=False
    )
    check_all_found(store, printed)
    # The put in flight either committed whole or not at all.
    stored = store.stats()["entries"]
    assert stored in (len(printed), len(printed) + 1)
    if stored > len(printed):
        assert store.get("u", "sig", f"k{len(printed)}") is not None
    # The store goes on.
    new = store.put(
        "u", "sig", "after", template=None, space="m", vector=vector(10**6), run_id="r", payload={}
    )
    assert store.search("u", "sig", "m", vector(10**6), 1)[0][0].id == new


def test_kill_mid_snapshot_keeps_the_previous_snapshot(tmp_path: Path) -> None:
    printed = run_and_kill(tmp_path, "snapshot", stop_after=0)
    index_dir = tmp_path / "index" / "plan_entries"
    (snapshot,) = index_dir.glob("*.faiss")  # the first snapshot, intact
    (abandoned,) = index_dir.glob("*.tmp")  # the second, never renamed
    assert len(printed) >= 100

    store = VectorStore(
        tmp_path / "cache.sqlite",
        tmp_path / "index",
        table="plan_entries",
        snapshot_every=50,
        background=False,
    )
    check_all_found(store, printed)
    stats = store.stats()
    assert stats["snapshot_loads"] == 1 and stats["index_builds"] == 0
    assert stats["entries"] in (len(printed), len(printed) + 1)
    # Catching up on the entries past the old snapshot made a new one, which removed the dead
    # process's temporary file.
    assert stats["snapshot_writes"] == 1
    assert not abandoned.exists() and snapshot.exists()

    reopened = VectorStore(
        tmp_path / "cache.sqlite", tmp_path / "index", table="plan_entries", background=False
    )
    check_all_found(reopened, printed)
    assert reopened.stats()["snapshot_loads"] == 1 and reopened.stats()["index_builds"] == 0
