"""End to end: a run served from the plan cache vs a miss planned by a local 0.3 s endpoint."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import ENDPOINT_LATENCY_S, figure, ms_stats, ratio, save
from bench.workload import (
    OPERATIONS,
    PREFIXES,
    DirectRunner,
    Requests,
    endpoint_app,
    latency_row,
    outcome,
    timed_invoke,
)

SEED = 20240501
WARMUP = "show my todos"
"""Loads the embedder and opens the endpoint's connection; shares no template with the rest."""

HIT_KINDS = ("exact", "renumbered", "paraphrase")
"""How each cached request is asked again: the same text; the same words with other numbers;
other words with the same numbers."""


def run(*, quick: bool = False) -> dict[str, Any]:
    """Time cache hits end to end against misses the endpoint plans, in one runtime.

    Each miss is a calculator request of a new shape with new numbers, so nothing cached can
    serve it: Crane embeds it, finds no plan, asks the endpoint, validates, executes, records
    and caches. Then each is asked again three ways (see `HIT_KINDS`), in a seeded random order;
    each of those must be served from the cache, make no endpoint call and answer what planning
    it afresh would.

    Args:
        quick: 3 misses and 9 hits instead of 20 and 60.

    Returns:
        The section's table, headline, notes and raw numbers.
    """
    misses_n = 3 if quick else 2 * len(OPERATIONS)
    requests = Requests(SEED)
    order = random.Random(SEED)
    # Miss i is operation i mod 10 asked way i mod 4: as 10 and 4 have 20 as their least common
    # multiple, the 20 misses are 20 distinct shapes, each operation asked two ways and each
    # way used five times.
    calcs = [requests.calc(i % len(OPERATIONS), i % len(PREFIXES)) for i in range(misses_n)]
    miss_ms: list[float] = []
    hit_ms: dict[str, list[float]] = {kind: [] for kind in HIT_KINDS}
    levels: Counter[str] = Counter()
    problems: list[str] = []
    hit_orders: list[list[str]] = []
    with endpoint_app(ENDPOINT_LATENCY_S, pattern_first=False) as (app, server, home):
        timed_invoke(app, WARMUP)
        # Expected answers: the rule planner's plan (what the endpoint answers) run on the
        # same tools, outside the graph.
        direct = DirectRunner(home)
        hit_calls = 0
        # Each miss is followed by its hits, so both sample the machine's load alike.
        for calc in calcs:
            response, ms = timed_invoke(app, calc.text)
            if response["plan_source"] != "llm":
                problems.append(f"miss {calc.text!r} was planned by {response['plan_source']}")
            if outcome(response) != outcome(direct.run(calc.text)):
                problems.append(f"miss {calc.text!r} answered {outcome(response)}")
            miss_ms.append(ms)
            renumbered = requests.renumbered(calc)
            asked = {
                "exact": (calc.text, outcome(response)),
                "renumbered": (renumbered.text, outcome(direct.run(renumbered.text))),
                "paraphrase": (calc.paraphrase, outcome(response)),
            }
            calls_before = len(server.requests)
            # A shuffled order, so work the miss leaves behind (the embedder's and SQLite's
            # caches, background writes) does not always land on the same kind.
            kinds = order.sample(HIT_KINDS, len(HIT_KINDS))
            for kind in kinds:
                text, expected = asked[kind]
                response, ms = timed_invoke(app, text)
                hit_ms[kind].append(ms)
                if response["plan_source"] != "cache" or not response["cache_hit"]:
                    problems.append(f"{kind} {text!r} was not a cache hit")
                else:
                    levels[response["cache_hit"]["level"]] += 1
                if outcome(response) != expected:
                    problems.append(f"{kind} {text!r} answered {outcome(response)}, not {expected}")
            hit_calls += len(server.requests) - calls_before
            hit_orders.append(kinds)
        miss_calls = len(server.requests) - 1 - hit_calls
    shapes = {
        "operations": len({c.operation for c in calcs}),
        "ways_to_ask": len({c.prefix for c in calcs}),
    }
    return _report(miss_ms, hit_ms, levels, problems, (miss_calls, hit_calls), shapes, hit_orders)


def _report(
    miss_ms: list[float],
    hit_ms: dict[str, list[float]],
    levels: Counter[str],
    problems: list[str],
    calls: tuple[int, int],
    shapes: dict[str, int],
    hit_orders: list[list[str]],
) -> dict[str, Any]:
    miss_calls, hit_calls = calls
    firsts = Counter(kinds[0] for kinds in hit_orders)
    all_hits = [ms for kind in HIT_KINDS for ms in hit_ms[kind]]
    miss = ms_stats(miss_ms)
    stats = {"all hits": ms_stats(all_hits)} | {k: ms_stats(v) for k, v in hit_ms.items()}
    labels = {
        "all hits": "cache hit, all",
        "exact": "cache hit, exact repeat",
        "renumbered": "cache hit, other numbers",
        "paraphrase": "cache hit, paraphrase",
    }
    rows = [latency_row("miss, planned by the endpoint", miss, miss)]
    rows += [latency_row(labels[name], s, miss) for name, s in stats.items()]
    hits = stats["all hits"]
    headline = (
        f"A cache hit runs end to end in {hits['p50_ms']:.1f} ms p50 vs {miss['p50_ms']:.0f} ms "
        f"for a miss planned by a {ENDPOINT_LATENCY_S} s endpoint: "
        f"{ratio(miss['p50_ms'], hits['p50_ms'])}x faster at p50, "
        f"{ratio(miss['p95_ms'], hits['p95_ms'])}x at p95; "
        f"problems (a hit not served from the cache, a wrong answer): {len(problems)}."
    )
    notes = [
        f"One runtime (`build_graph(pattern_first=False)`, cache on, local embedder) against a "
        f"local OpenAI-compatible endpoint that answers each chat request after "
        f"{ENDPOINT_LATENCY_S} s with the rule planner's plan. Wall time of `app.invoke`, after "
        f"one untimed warm-up run ({WARMUP!r}) that loads the embedder and opens the connection.",
        f"Baseline: {miss['n']} misses, calculator requests of a new shape with new numbers each "
        f"({miss['n']} distinct pairs of an operation and a way to ask: {shapes['operations']} "
        f"of the {len(OPERATIONS)} operations, {shapes['ways_to_ask']} of the {len(PREFIXES)} "
        f"ways to ask, {', '.join(repr(p) for p in PREFIXES)}), planned by the endpoint "
        f"({miss_calls} endpoint calls). "
        "A miss includes the embedding, the failed cache search, the dynamic-examples search, "
        "the LLM call, validation, execution, the history write and caching the plan.",
        f"Hits: each miss asked again as an exact repeat, with other numbers (template level) "
        f"and in other words with the same numbers (semantic level), right after the miss in a "
        f"seeded random order (so what the miss leaves behind does not always land on one "
        f"kind; first after the miss: {dict(sorted(firsts.items()))}); levels served: "
        f"{dict(sorted(levels.items()))}. A hit includes the lookup, re-validation, execution "
        f"and the history write; the hits made {hit_calls} endpoint calls.",
        "Correctness: every miss must be planned by the endpoint and every hit served from the "
        "cache; each must answer what the rule planner's plan gives run on the same tools "
        "outside the graph, and an exact repeat or paraphrase what its miss answered. "
        f"Problems: {len(problems)}.",
        "Percentiles are nearest-rank, as `crane stats` computes them: of 20 runs, p95 is the "
        "second-slowest.",
    ]
    return {
        "title": "End to end: cache hit vs miss planned by the endpoint",
        "columns": ["path", "runs", "p50 ms", "p95 ms", "miss/hit p50", "miss/hit p95"],
        "rows": rows,
        "headline": headline,
        "notes": notes,
        "data": {
            "endpoint_latency_s": ENDPOINT_LATENCY_S,
            "miss_ms": [round(ms, 3) for ms in miss_ms],
            "hit_ms": {k: [round(ms, 3) for ms in v] for k, v in hit_ms.items()},
            "miss_stats": miss,
            "hit_stats": stats,
            "hit_levels": dict(levels),
            "miss_endpoint_calls": miss_calls,
            "hit_endpoint_calls": hit_calls,
            "hit_orders": hit_orders,
            "problems": problems,
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Draw the latency distribution of misses and of each kind of hit, on a log scale."""
    data = result["data"]
    fig, ax = figure(
        "End to end: cache hit vs endpoint-planned miss", "path", "latency per run (ms, log)"
    )
    series = [data["miss_ms"], *(data["hit_ms"][k] for k in HIT_KINDS)]
    ax.boxplot(series, whis=(5, 95), showfliers=True)
    ax.set_xticks(
        range(1, len(series) + 1), ["miss (LLM)", "hit: exact", "hit: numbers", "hit: words"]
    )
    ax.set_yscale("log")
    ax.grid(axis="y", alpha=0.3)
    hits = data["hit_stats"]["all hits"]
    ax.text(
        0.98,
        0.95,
        f"miss / hit p50 = {ratio(data['miss_stats']['p50_ms'], hits['p50_ms'])}x\n"
        f"miss / hit p95 = {ratio(data['miss_stats']['p95_ms'], hits['p95_ms'])}x",
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.9, "edgecolor": "none"},
    )
    save(fig, path)
