"""Memory: peak RSS of a Crane runtime serving 100k cached plans, against one with an empty cache."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import child_json, collect, figure, offline, ratio, save, spawn
from bench.lookup import DIM, EMBEDDINGS, TABLE, USER_ID, prepared_home

ENTRIES = 100_000
QUICK_ENTRIES = 1_000

MAX_ENTRIES = 1_000_000
"""`cache_max_entries` of every measured runtime. The default cap (10,000 per user) would make
the run's own `put` evict 90% of the entries, and rebuild the index, mid-measurement."""

PROMPT = "what is 8% of 50"
"""The measured request: not cached, so it goes past the exact and template levels to the
semantic search."""

# Runs in a fresh interpreter: one runtime, one request, then its peak RSS as JSON. It checks
# that the runtime searched the partition holding the bulk-inserted entries, found via the one
# `Services` of the process (the compiled graph does not expose it).
_CHILD = r"""
import gc, json, resource, sys, time
args = json.loads(sys.argv[1])
from graph import build_graph
from graph.services import Services

app = build_graph(home=args["home"], embeddings=args["embeddings"],
                  cache_max_entries=args["max_entries"])
start = time.perf_counter()
response = app.invoke({"prompt": args["prompt"]})["response"]
invoke_ms = (time.perf_counter() - start) * 1000
# Read before the checks below allocate anything. The peak is VmHWM, this address space's
# high-water mark: Linux carries ru_maxrss across execve, so a child spawned by a large parent
# would report the parent's peak (kept for reference).
ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open("/proc/self/status") as f:
    status = dict(line.split(":", 1) for line in f if line.startswith(("VmHWM", "VmRSS")))
peak, rss_now = (int(status[k].split()[0]) for k in ("VmHWM", "VmRSS"))
(services,) = [o for o in gc.get_objects() if isinstance(o, Services)]
store = services.cache.store
stats = store.stats(user_id=args["user_id"])
prefix = services.cache.vectors.space + "/"
searched = [i for i in stats["indexes"]
            if i["signature"] == services.signature and i["space"].startswith(prefix)]
if len(searched) != 1:
    raise AssertionError(f"the runtime did not search one partition of its space: {stats}")
index = searched[0]
if index["size"] < args["entries"] or stats["signatures"].get(services.signature, 0) < args["entries"]:
    raise AssertionError(f"the runtime's cache does not hold the {args['entries']} entries: {stats}")
if response["cache_hit"] is not None or response["plan_source"] == "cache":
    raise AssertionError(f"the request was served from the cache: {response['cache_hit']}")
print(json.dumps({
    "peak_kib": peak, "rss_end_kib": rss_now, "ru_maxrss_kib": ru_maxrss,
    "invoke_ms": invoke_ms, "answer": response["answer"], "plan_source": response["plan_source"],
    "signature": services.signature, "index": index, "entries": stats["entries"],
    "spaces": stats["spaces"], "snapshot_loads": stats["snapshot_loads"],
    "snapshot_writes": stats["snapshot_writes"], "index_builds": stats["index_builds"],
}))
"""


def _runtime_env() -> dict[str, str]:
    """Return the children's environment: offline, no tracing, no CRANE_* from the shell."""
    with offline():
        return {k: v for k, v in os.environ.items() if not k.startswith("CRANE_")}


def _files(home: Path) -> dict[str, int]:
    def size(path: Path) -> int:
        return path.stat().st_size if path.exists() else 0

    snapshots = home / "cache-index" / TABLE
    return {
        "cache_sqlite_bytes": size(home / "cache.sqlite"),
        "cache_wal_bytes": size(home / "cache.sqlite-wal"),
        "snapshot_bytes": sum(size(p) for p in snapshots.glob("*.faiss")),
    }


def _mb(kib: int) -> float:
    return round(kib / 1024, 1)


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure the peak RSS of runtimes with an empty and a full plan cache, each in its own process.

    Args:
        quick: 1,000 entries instead of 100,000: a smoke test.

    Returns:
        The section's title, columns, rows, headline, notes and raw data.

    Raises:
        RuntimeError: A child failed, including its check that the runtime searched the
            partition holding the entries.
        AssertionError: The full runtime searched another partition or rebuilt its index.
    """
    entries = QUICK_ENTRIES if quick else ENTRIES
    env = _runtime_env()
    # Shared with the lookup section when both run in one process: one HNSW build, not two.
    prep = prepared_home(entries)
    with tempfile.TemporaryDirectory(prefix="crane-bench-memory-") as tmp:
        empty_home, full_home = Path(tmp) / "empty", Path(tmp) / "full"
        empty_home.mkdir()
        copy_start = time.perf_counter()
        shutil.copytree(prep.home, full_home)  # the runs write: never into the shared directory
        copy_s = round(time.perf_counter() - copy_start, 2)

        def args(home: Path, expect: int) -> dict[str, Any]:
            return {
                "home": str(home),
                "embeddings": EMBEDDINGS,
                "max_entries": MAX_ENTRIES,
                "prompt": PROMPT,
                "entries": expect,
                "user_id": USER_ID,
            }

        started = time.perf_counter()
        # Side by side: each child's peak RSS is its own.
        empty_child = spawn(_CHILD, args(empty_home, 0), env)
        try:
            full = child_json(_CHILD, args(full_home, entries), env)
            empty = collect(empty_child)
        finally:
            if empty_child.poll() is None:  # the other child failed: stop this one too
                empty_child.kill()
                empty_child.communicate()
        children_s = round(time.perf_counter() - started, 1)
        files = {"empty": _files(empty_home), "full": _files(full_home)}
    searched = full["index"]
    if (searched["signature"], searched["space"]) != (prep.signature, prep.space):
        raise AssertionError(f"the runtime searched another partition: {searched}")
    if searched["source"] != "snapshot" or searched["kind"] != prep.kind:
        raise AssertionError(f"the runtime did not load the prepared snapshot: {searched}")
    empty_mb, full_mb = _mb(empty["peak_kib"]), _mb(full["peak_kib"])
    empty_end_mb, full_end_mb = _mb(empty["rss_end_kib"]), _mb(full["rss_end_kib"])
    extra = round(full_mb - empty_mb, 1)
    mib = 1024 * 1024
    disk = files["full"]
    sqlite_mb = round(disk["cache_sqlite_bytes"] / mib, 1)
    snapshot_mb = round(disk["snapshot_bytes"] / mib, 1)

    def row(label: str, r: dict[str, Any], n: int) -> list[Any]:
        peak, resident = _mb(r["peak_kib"]), _mb(r["rss_end_kib"])
        index = r["index"]
        kind = f"{index['kind']} ({index['source']})" if index["kind"] else "none (empty)"
        return [
            label,
            f"{n:,}",
            kind,
            peak,
            round(peak - empty_mb, 1),
            ratio(peak, empty_mb),
            resident,
            round(resident - empty_end_mb, 1),
            round(files["empty" if n == 0 else "full"]["cache_sqlite_bytes"] / mib, 1),
            round(files["empty" if n == 0 else "full"]["snapshot_bytes"] / mib, 1),
        ]

    resident_extra = round(full_end_mb - empty_end_mb, 1)
    headline = (
        f"With {entries:,} cached plans a Crane runtime peaks at {full_mb:.0f} MB RSS against "
        f"{empty_mb:.0f} MB with an empty cache ({extra:+.1f} MB, {ratio(full_mb, empty_mb)}x) "
        f"and stays at {full_end_mb:.0f} MB against {empty_end_mb:.0f} MB "
        f"({resident_extra:+.1f} MB) after the request; on disk the cache takes "
        f"{sqlite_mb:.0f} MB of cache.sqlite and a {snapshot_mb:.0f} MB index snapshot"
    )
    notes = [
        f"Each runtime is build_graph(home=..., embeddings='{EMBEDDINGS}', "
        f"cache_max_entries={MAX_ENTRIES:,}) in a fresh Python process, offline (rule "
        f"planner), answering one uncached request ({PROMPT!r}) that reaches the semantic "
        "search. Peak RSS is the child's VmHWM after the run (its address space's high-water "
        "mark), 'RSS after the request' its VmRSS then. Not getrusage's ru_maxrss: Linux carries it across "
        "execve, so a child of a large parent reports the parent's peak (in data: "
        "ru_maxrss_kib).",
        "Both runtimes load the MiniLM model for the request's embedding; the empty runtime "
        f"peaks {empty_mb - empty_end_mb:.0f} MB above what stays resident, and the full one "
        "loads its index after the model. So the peak "
        "difference understates what the cache holds in memory: the difference after the "
        "request is the index's resident cost.",
        f"The full cache holds {entries:,} entries bulk-inserted into plan_entries (seeded random "
        f"unit vectors of {DIM} dimensions, valid plan payloads) in the partition the runtime "
        f"searches: user {USER_ID!r}, planner signature {prep.signature}, space {prep.space}. "
        "The child checks that the runtime's own store indexed them in that partition and that "
        "the request was a cache miss.",
        f"Its {prep.kind} index and snapshot were built beforehand in the parent ({prep.build_s} "
        "s, shared with the lookup section), so the runtime starts as it would after its first "
        "start: from the snapshot. A first start without one also holds an exact flat index "
        "while HNSW builds in the background; that transient peak is not measured here (it "
        "would take a second 100k HNSW build).",
        "cache_max_entries is raised because the default cap (10,000 per user) would make the "
        "run's own put() evict the entries mid-measurement: a 100k-entry cache needs "
        "CRANE_CACHE_MAX_ENTRIES raised anyway.",
        f"On disk (full cache): cache.sqlite {disk['cache_sqlite_bytes']:,} bytes, WAL "
        f"{disk['cache_wal_bytes']:,} bytes, snapshot {disk['snapshot_bytes']:,} bytes; the "
        f"empty runtime's cache.sqlite {files['empty']['cache_sqlite_bytes']:,} bytes.",
        f"The two runtimes' processes ran side by side and took {children_s} s; copying the "
        f"prepared data directory took {copy_s} s.",
    ]
    if quick:
        notes.append("Quick mode: 1,000 entries (a flat index); not for quoting.")
    return {
        "title": "Memory with a large plan cache",
        "columns": [
            "runtime",
            "cached entries",
            "index (source)",
            "peak RSS (MB)",
            "peak vs empty (MB)",
            "peak ratio",
            "RSS after the request (MB)",
            "vs empty (MB)",
            "cache.sqlite (MB)",
            "snapshot (MB)",
        ],
        "rows": [row("empty cache (baseline)", empty, 0), row("full cache", full, entries)],
        "headline": headline,
        "notes": notes,
        "data": {
            "entries": entries,
            "peak_rss_mb": {"empty": empty_mb, "full": full_mb},
            "extra_mb": extra,
            "rss_after_request_mb": {"empty": empty_end_mb, "full": full_end_mb},
            "resident_extra_mb": resident_extra,
            "ratio": ratio(full_mb, empty_mb),
            "files": files,
            "prepared": {
                "signature": prep.signature,
                "space": prep.space,
                "kind": prep.kind,
                "fill_s": prep.fill_s,
                "build_s": prep.build_s,
            },
            "copy_s": copy_s,
            "children_s": children_s,
            "children": {"empty": empty, "full": full},
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Write a bar chart of the two runtimes' peak RSS (and their RSS after the request)."""
    data = result["data"]
    peaks, after = data["peak_rss_mb"], data["rss_after_request_mb"]
    labels = ["empty cache", f"{data['entries']:,} cached entries"]
    x = [0.0, 1.0]
    width = 0.38
    fig, ax = figure(
        result["title"], "Crane runtime (one request, fresh process)", "resident memory (MB)"
    )
    series = [
        ("peak RSS", [peaks["empty"], peaks["full"]], -width / 2, "#1f77b4"),
        ("RSS after the request", [after["empty"], after["full"]], width / 2, "#aec7e8"),
    ]
    for label, values, offset, color in series:
        bars = ax.bar([v + offset for v in x], values, width, label=label, color=color)
        ax.bar_label(bars, labels=[f"{v:.0f}" for v in values])
    ax.set_xticks(x, labels)
    ax.set_ylim(0, max(peaks.values()) * 1.35)  # room for the legend above the bars
    ax.legend(loc="upper center", ncols=2)
    save(fig, path)
