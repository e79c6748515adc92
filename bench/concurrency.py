"""Concurrent runs: throughput and latency of N simultaneous `ainvoke` runs against a 0.3 s endpoint."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import ENDPOINT_LATENCY_S, endpoint_process, figure, ms_stats, ratio, save
from bench.workload import OPERATIONS, PREFIXES, USER, Requests, scratch_home
from graph import build_graph
from graph.history import SqliteHistory

SEED = 7
WARMUP = "show my todos"

ROUNDS = {1: 5, 10: 3, 100: 2}
"""Rounds of `asyncio.gather` per concurrency level: more at low levels, where a round is one
sample."""
QUICK_ROUNDS = {1: 2, 5: 1}


async def _rounds(
    app: Any, prompts: list[list[str]]
) -> tuple[list[float], list[float], list[dict[str, Any]], float]:
    """Run each round's prompts at once.

    Returns:
        Each round's wall time (s), each run's latency (ms), the responses, and the CPU
        time the process used over the rounds (s).
    """
    walls: list[float] = []
    latencies: list[float] = []
    responses: list[dict[str, Any]] = []

    async def one(prompt: str) -> None:
        start = time.perf_counter()
        out = await app.ainvoke({"prompt": prompt, "user_id": USER})
        latencies.append((time.perf_counter() - start) * 1000)
        responses.append(out["response"])

    await one(WARMUP)  # opens this loop's connection pool and loads the embedder
    latencies.clear()
    responses.clear()
    cpu_start = time.process_time()
    for batch in prompts:
        start = time.perf_counter()
        await asyncio.gather(*(one(p) for p in batch))
        walls.append(time.perf_counter() - start)
    return walls, latencies, responses, time.process_time() - cpu_start


def _level(concurrency: int, rounds: int, requests: Requests) -> dict[str, Any]:
    """Measure one concurrency level on a fresh endpoint and runtime."""
    prompts = [
        [
            requests.calc(i % len(OPERATIONS), i // len(OPERATIONS) % len(PREFIXES)).text
            for i in range(concurrency)
        ]
        for _ in range(rounds)
    ]
    with scratch_home() as home, endpoint_process(ENDPOINT_LATENCY_S) as endpoint:
        app = build_graph(home=str(home), pattern_first=False, cache_enabled=False)
        walls, latencies, responses, cpu_s = asyncio.run(_rounds(app, prompts))
        stats = endpoint.stats()
        node_ms: dict[str, list[float]] = {}
        history = SqliteHistory(home / "history.sqlite")
        for row in history.recent(USER, limit=concurrency * rounds):
            for node, ms in (row.get("node_ms") or {}).items():
                node_ms.setdefault(node, []).append(ms)
    seen = {
        "endpoint_calls": stats["chat_requests"] - 1,  # not the warm-up
        "max_in_flight": stats["max_in_flight"],
        "connections": stats["connections"],
    }
    served_ms = stats["chat_ms"][1:]
    runs = concurrency * rounds
    throughput = runs / sum(walls)
    return {
        "concurrency": concurrency,
        "rounds": rounds,
        "runs": runs,
        "round_wall_s": [round(w, 4) for w in walls],
        "runs_per_s": round(throughput, 2),
        "ideal_runs_per_s": round(concurrency / ENDPOINT_LATENCY_S, 2),
        "latency": ms_stats(latencies),
        "cpu_ms_per_run": round(cpu_s * 1000 / runs, 2),
        "latency_ms": [round(ms, 2) for ms in latencies],
        "completed_by_llm": sum(
            r["status"] == "completed" and r["plan_source"] == "llm" for r in responses
        ),
        **seen,
        "server_ms_p50": round(median(served_ms), 2),
        "node_ms_p50": {node: round(median(v), 2) for node, v in node_ms.items()},
    }


def pool_limits() -> dict[str, int | None]:
    """Return the connection limits of the openai SDK's default HTTP client, which Crane uses."""
    try:
        from openai._constants import DEFAULT_CONNECTION_LIMITS as limits
    except ImportError:  # a private module: an SDK without it reports unknown limits
        return {"max_connections": None, "max_keepalive_connections": None}
    return {
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
    }


def run(*, quick: bool = False) -> dict[str, Any]:
    """Run 1, 10 and 100 concurrent `ainvoke` runs, each planned by the endpoint.

    Each level gets its own endpoint (so its `max_in_flight` is its own) and runtime, with
    `pattern_first=False` and the cache off: every run calls the endpoint once.

    Args:
        quick: levels 1 and 5, two rounds and one, instead of 1, 10 and 100.

    Returns:
        The section's table, headline, notes and raw numbers.
    """
    requests = Requests(SEED)
    rounds = QUICK_ROUNDS if quick else ROUNDS
    measured = [_level(n, count, requests) for n, count in rounds.items()]
    base = measured[0]["runs_per_s"]
    rows = []
    for m in measured:
        rows.append(
            [
                m["concurrency"],
                m["runs"],
                m["runs_per_s"],
                m["ideal_runs_per_s"],
                ratio(m["runs_per_s"], m["ideal_runs_per_s"]),
                ratio(m["runs_per_s"], base),
                round(m["latency"]["p50_ms"], 1),
                round(m["latency"]["p95_ms"], 1),
                m["max_in_flight"],
            ]
        )
    top = measured[-1]
    limits = pool_limits()
    gil_bound = round(1000 / top["cpu_ms_per_run"], 1) if top["cpu_ms_per_run"] else None
    # asyncio's default executor is a ThreadPoolExecutor with its default size.
    pool_workers = min(32, (os.cpu_count() or 1) + 4)
    headline = (
        f"{top['concurrency']} concurrent runs: {top['runs_per_s']} runs/s, "
        f"{ratio(top['runs_per_s'], base)}x one run at a time and "
        f"{ratio(top['runs_per_s'], top['ideal_runs_per_s'])} of the ideal "
        f"{top['ideal_runs_per_s']} runs/s ({top['concurrency']} / {ENDPOINT_LATENCY_S} s); "
        f"p95 {top['latency']['p95_ms']:.0f} ms, up to {top['max_in_flight']} endpoint calls "
        "in flight."
    )
    notes = [
        f"Each level: a fresh local endpoint in a child process (`bench.endpoint`, so it shares "
        f"no GIL with Crane) answering after {ENDPOINT_LATENCY_S} s and a fresh "
        "runtime (`build_graph(pattern_first=False, cache_enabled=False)`), one untimed "
        "warm-up run, then rounds of N distinct calculator requests started together with "
        "`asyncio.gather` over `app.ainvoke`; runs/s = runs / summed round wall time; "
        "latency per run from its start.",
        "Ideal = N / endpoint latency: every run overlapping perfectly and Crane costing "
        "nothing. 'vs 1' = runs/s over the 1-concurrent runs/s measured in the same run.",
        "Every run must complete with an LLM plan: "
        + ", ".join(f"N={m['concurrency']}: {m['completed_by_llm']}/{m['runs']}" for m in measured)
        + "; endpoint calls: "
        + ", ".join(f"N={m['concurrency']}: {m['endpoint_calls']}" for m in measured)
        + ".",
        "Connection pool: the endpoint accepted "
        + ", ".join(f"{m['connections']} connections at N={m['concurrency']}" for m in measured)
        + " (warm-up included). Crane gives each event loop its own "
        f"`openai.DefaultAsyncHttpxClient`, whose pool allows {limits['max_connections']} "
        f"connections ({limits['max_keepalive_connections']} kept alive): one connection per "
        "concurrent run means no run queued for a connection; `max_in_flight` is how many "
        "endpoint calls overlapped.",
        "Where the time goes beyond the endpoint: median server-side time per call "
        + ", ".join(f"{m['server_ms_p50']} ms at N={m['concurrency']}" for m in measured)
        + "; median `llm_planner` node time "
        + ", ".join(
            f"{m['node_ms_p50'].get('llm_planner', 0.0)} ms at N={m['concurrency']}"
            for m in measured
        )
        + ". CPU time of the process per run (Crane's alone: the endpoint runs in a child process): "
        + ", ".join(f"{m['cpu_ms_per_run']} ms at N={m['concurrency']}" for m in measured)
        + f". Were all of it under the GIL, one core could do {gil_bound} runs/s "
        f"(1000 / {top['cpu_ms_per_run']} ms): the process's CPU, not the endpoint, bounds the "
        f"throughput ({os.cpu_count()} cores, shared with other work). The sync nodes run in "
        f"the event loop's default thread pool ({pool_workers} threads).",
    ]
    return {
        "title": "Concurrent runs against a 0.3 s endpoint",
        "columns": [
            "concurrent",
            "runs",
            "runs/s",
            "ideal runs/s",
            "of ideal",
            "vs 1",
            "p50 ms",
            "p95 ms",
            "max in flight",
        ],
        "rows": rows,
        "headline": headline,
        "notes": notes,
        "data": {
            "endpoint_latency_s": ENDPOINT_LATENCY_S,
            "pool_limits": limits,
            "cpu_count": os.cpu_count(),
            "default_thread_pool_workers": pool_workers,
            "one_core_bound_runs_per_s": gil_bound,
            "levels": measured,
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Draw runs/s against concurrency, with the ideal N / latency line, on log-log axes."""
    levels = result["data"]["levels"]
    fig, ax = figure(
        "Throughput of concurrent runs", "concurrent runs (N)", "runs per second (log)"
    )
    n = [m["concurrency"] for m in levels]
    ax.plot(
        n, [m["ideal_runs_per_s"] for m in levels], "--", color="gray", label="ideal: N / 0.3 s"
    )
    ax.plot(n, [m["runs_per_s"] for m in levels], "o-", color="C0", label="Crane, measured")
    for m in levels:
        ax.annotate(
            f"{m['runs_per_s']:.1f}/s, {ratio(m['runs_per_s'], m['ideal_runs_per_s'])} of ideal"
            f"\np95 {m['latency']['p95_ms']:.0f} ms",
            (m["concurrency"], m["runs_per_s"]),
            textcoords="offset points",
            xytext=(6, -18),
            fontsize=7,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.minorticks_off()
    ax.set_xticks(n, [str(v) for v in n])
    ax.set_xlim(n[0] / 1.5, n[-1] * 4)  # room for the last label
    ticks = [t for t in (1, 3, 10, 30, 100, 300, 1000) if t <= levels[-1]["ideal_runs_per_s"] * 2]
    ax.set_yticks(ticks, [str(t) for t in ticks])
    ax.legend()
    save(fig, path)
