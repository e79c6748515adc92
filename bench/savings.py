"""Savings on a workload: LLM calls and cost with the plan cache and pattern-first routing, and wrong answers."""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import ENDPOINT_MODEL, PLAN_TOKENS, figure, ms_stats, ratio, rule_plan, save
from bench.workload import (
    OPERATIONS,
    PREFIXES,
    Requests,
    endpoint_app,
    outcome,
    timed_invoke,
    todo_list,
)
from graph.pattern_planner import plan_request
from tests.cache_pairs import PAIRS
from tests.oracle import SEED_TODOS

SEED = 1234
LATENCY_S = 0.02
"""The endpoint's latency here: time is not the point, calls and cost are."""

WARMUP_USER = "warmup"
"""A user of its own for the warm-up run, so it shares no cache, todos or examples with the stream."""

CONFIGS: dict[str, dict[str, bool]] = {
    "baseline": {"cache_enabled": False, "pattern_first": False},
    "cache": {"cache_enabled": True, "pattern_first": False},
    "pattern_first": {"cache_enabled": False, "pattern_first": True},
    "cache+pattern_first": {"cache_enabled": True, "pattern_first": True},
}
"""Each configuration and the one without the cache whose answers it must match."""

REFERENCE = {"cache": "baseline", "cache+pattern_first": "pattern_first"}

LABELS = {
    "baseline": "cache off, pattern-first off (baseline)",
    "cache": "cache on, pattern-first off",
    "pattern_first": "cache off, pattern-first on",
    "cache+pattern_first": "cache on, pattern-first on",
}


def _calculation(expression: str, goal: str) -> dict[str, Any]:
    step = {"expression": expression}
    return {"steps": [_step(1, "calculator", step, goal)], "final_goal": goal}


def _todos(*calls: tuple[str, str | None], goal: str) -> dict[str, Any]:
    steps = [
        _step(i, "todo_store", {"action": action, "text": text, "todo_id": None}, goal)
        for i, (action, text) in enumerate(calls, start=1)
    ]
    return {"steps": steps, "final_goal": goal}


def _step(number: int, tool: str, tool_input: dict[str, Any], goal: str) -> dict[str, Any]:
    return {"step_number": number, "tool_name": tool, "tool_input": tool_input, "reasoning": goal}


@dataclass(frozen=True)
class LlmOnly:
    """A request only a model can plan: the rule planner refuses it and its paraphrases."""

    text: str
    plan: dict[str, Any]
    """The correct plan, which the stand-in model answers for the request and its paraphrases."""
    paraphrases: tuple[str, ...] = ()


LLM_ONLY: tuple[LlmOnly, ...] = (
    LlmOnly(
        "I bought 3 boxes of 12 eggs, how many eggs is that",
        _calculation("3 * 12", "Count the eggs in 3 boxes of 12."),
        ("how many eggs are in 3 boxes of 12",),
    ),
    LlmOnly(
        "put 'call the bank' on my list and tell me what's on it",
        _todos(("add", "call the bank"), ("list", None), goal="Add a todo, then show the list."),
        ("note 'call the bank' on my list, then tell me everything on it",),
    ),
    LlmOnly(
        "a pizza costs 18 dollars split between 4 friends, how much does each pay",
        _calculation("18 / 4", "Split 18 dollars four ways."),
        ("how much does each of 4 friends pay for an 18 dollar pizza",),
    ),
    LlmOnly(
        "my rent is 1200 a month, what do I pay in a year",
        _calculation("1200 * 12", "A year of rent at 1200 a month."),
        ("what is a year of rent at 1200 a month",),
    ),
    LlmOnly(
        "if I walk 5 km a day for 6 days how far do I go",
        _calculation("5 * 6", "Distance walked in 6 days at 5 km a day."),
        ("walking 5 km every day for 6 days, how many km is that",),
    ),
    LlmOnly(
        "I've got 250 dollars and spend 75, what's left",
        _calculation("250 - 75", "Money left after spending 75 of 250."),
        ("I had 250 dollars and spent 75, how much do I have now",),
    ),
    LlmOnly(
        "jot down that I need to fix the bike",
        _todos(("add", "fix the bike"), goal="Add a todo to fix the bike."),
        ("make a note that I need to fix the bike",),
    ),
    LlmOnly(
        "I no longer need to buy bread, scrap it",
        _todos(("delete", "buy bread"), goal="Delete the todo to buy bread."),
        ("drop the bread one, I do not need it anymore",),
    ),
    LlmOnly(
        "a train goes 80 km an hour for 3 hours, how far does it get",
        _calculation("80 * 3", "Distance at 80 km an hour for 3 hours."),
    ),
    LlmOnly(
        "how many legs do 7 spiders have",
        _calculation("7 * 8", "Legs of 7 spiders, 8 each."),
        ("count the legs on 7 spiders",),
    ),
)
"""Free-form calculator and todo requests the rule planner refuses, each with its correct plan:
without them the stand-in model would plan only what the rules plan, and pattern-first routing
would avoid every call by construction."""

CANNED: dict[str, dict[str, Any]] = {
    text: request.plan for request in LLM_ONLY for text in (request.text, *request.paraphrases)
}


def model_plan(text: str) -> dict[str, Any]:
    """Return what the stand-in model plans: a canned plan for `LLM_ONLY`, else the rules' plan."""
    return CANNED[text] if text in CANNED else rule_plan(text)


def request_stream(n: int, seed: int = SEED) -> list[tuple[str, str]]:
    """Return a seeded stream of `n` requests, each with its kind.

    It mixes labeled pairs from `tests.cache_pairs` (a request, then later its paraphrase or
    near miss: other numbers, other todo text, other action, negation, ...), new calculator
    requests and the same asked later with other numbers or in other words, requests only a
    model can plan (`LLM_ONLY`, later their paraphrases and repeats: about a quarter of the
    stream), and exact repeats of anything earlier. Kinds: `new`, `repeat`, `other_numbers`,
    `paraphrase`, `near_miss` (a text seen before is a `repeat`). The pairs and the todo
    requests assume the todo list `tests.oracle.SEED_TODOS`.
    """
    rng = random.Random(seed)
    calcs = Requests(seed)
    pairs = rng.sample(PAIRS, len(PAIRS))
    llm_only = rng.sample(LLM_ONLY, len(LLM_ONLY))
    stream: list[tuple[str, str]] = []
    pending: deque[tuple[str, str]] = deque()
    while len(stream) < n:
        roll = rng.random()
        if pending and (roll < 0.3 or len(pending) > 4):
            item = pending.popleft()
        elif stream and roll < 0.45:
            item = (rng.choice(stream)[0], "repeat")
        elif roll < 0.6:
            calc = calcs.calc(rng.randrange(len(OPERATIONS)), rng.randrange(len(PREFIXES)))
            item = (calc.text, "new")
            pending.append((calcs.renumbered(calc).text, "other_numbers"))
            if rng.random() < 0.5:
                pending.append((calc.paraphrase, "paraphrase"))
        elif roll < 0.8:
            pair = pairs.pop()
            item = (pair.cached, "new")
            pending.append((pair.new, pair.kind))
        elif llm_only:
            request = llm_only.pop()
            item = (request.text, "new")
            pending.extend((text, "paraphrase") for text in request.paraphrases)
        else:  # every one asked already: people ask the same things again
            item = (rng.choice([text for text, _ in stream if text in CANNED]), "repeat")
        seen = any(text == item[0] for text, _ in stream)
        stream.append((item[0], "repeat") if seen else item)
    return stream


def _run_config(stream: list[tuple[str, str]], settings: dict[str, bool]) -> dict[str, Any]:
    """Run the stream in order through one configuration, from a fresh data directory."""
    with endpoint_app(LATENCY_S, SEED_TODOS, model_plan, **settings) as (app, server, home):
        timed_invoke(app, "what is 2 plus 3", WARMUP_USER)  # loads the embedder, opens the pool
        before = len(server.requests)
        responses, times = [], []
        for text, _ in stream:
            response, ms = timed_invoke(app, text)
            responses.append(response)
            times.append(ms)
        calls = len(server.requests) - before
        todos = todo_list(home)
    return {
        "llm_calls": calls,
        "cost_usd": round(sum(r["cost_usd"] for r in responses), 6),
        "cache_hits": [(r["cache_hit"] or {}).get("level") for r in responses],
        "outcomes": [outcome(r) for r in responses],
        "plan_sources": dict(Counter(str(r["plan_source"]) for r in responses)),
        "failed": sum(r["status"] != "completed" for r in responses),
        "latency": ms_stats(times),
        "todos": todos,
    }


def wrong_answers(
    stream: list[tuple[str, str]], run: dict[str, Any], reference: dict[str, Any]
) -> list[dict[str, Any]]:
    """Return where a configuration's run answered otherwise than its reference's.

    Args:
        stream: The requests both ran, as `request_stream` returns them.
        run: The configuration's `outcomes` (one per request) and final `todos`.
        reference: The same of the configuration it must match.

    Returns:
        One entry per position whose outcome differs, then one for the final todo list if
        those differ; empty when the two agree.
    """
    wrong = [
        {"position": i, "request": text, "got": got, "expected": want}
        for i, ((text, _), got, want) in enumerate(
            zip(stream, run["outcomes"], reference["outcomes"], strict=True)
        )
        if got != want
    ]
    if run["todos"] != reference["todos"]:
        wrong.append(
            {"position": "final todo list", "got": run["todos"], "expected": reference["todos"]}
        )
    return wrong


def run(*, quick: bool = False) -> dict[str, Any]:
    """Run one seeded request stream through four configurations and compare calls, cost and answers.

    Args:
        quick: a 12-request stream instead of 150.

    Returns:
        The section's table, headline, notes and raw numbers.
    """
    stream = request_stream(12 if quick else 150)
    runs = {name: _run_config(stream, settings) for name, settings in CONFIGS.items()}
    base = runs["baseline"]
    for name, reference in REFERENCE.items():
        runs[name]["wrong"] = wrong_answers(stream, runs[name], runs[reference])
    kinds = Counter(kind for _, kind in stream)
    # Asked of the rule planner itself, not of how the stream was made.
    rules_plan = sum(plan_request(text).plan is not None for text, _ in stream)
    llm_only = sum(text in CANNED for text, _ in stream)
    rows = []
    for name, r in runs.items():
        hits = [level for level in r["cache_hits"] if level]
        r["hits_by_level"] = dict(Counter(hits))
        r["hits_by_kind"] = dict(
            Counter(kind for (_, kind), level in zip(stream, r["cache_hits"], strict=True) if level)
        )
        r["differs_from_baseline"] = sum(
            a != b for a, b in zip(r["outcomes"], base["outcomes"], strict=True)
        ) + (r["todos"] != base["todos"])
        rows.append(
            [
                LABELS[name],
                r["llm_calls"],
                base["llm_calls"] - r["llm_calls"],
                ratio(base["llm_calls"] - r["llm_calls"], base["llm_calls"]),
                round(r["cost_usd"], 4),
                round(base["cost_usd"] - r["cost_usd"], 4),
                len(hits),
                ratio(len(hits), len(stream)),
                len(r["wrong"]) if "wrong" in r else "reference",
                round(r["latency"]["p50_ms"], 1),
            ]
        )
    cache, both = runs["cache"], runs["cache+pattern_first"]
    headline = (
        f"On a {len(stream)}-request stream, the plan cache avoids "
        f"{base['llm_calls'] - cache['llm_calls']} of {base['llm_calls']} LLM calls "
        f"({ratio(base['llm_calls'] - cache['llm_calls'], base['llm_calls'])}) and "
        f"${base['cost_usd'] - cache['cost_usd']:.4f} of ${base['cost_usd']:.4f}; with "
        f"pattern-first routing too, {base['llm_calls'] - both['llm_calls']} "
        f"({ratio(base['llm_calls'] - both['llm_calls'], base['llm_calls'])}), the rules "
        f"planning {ratio(rules_plan, len(stream))} of the stream; wrong answers: "
        f"{len(cache['wrong'])} and {len(both['wrong'])}."
    )
    notes = [
        f"Stream: {len(stream)} requests, seed {SEED}, by kind {dict(kinds)}: labeled pairs "
        "from tests/cache_pairs.py (a request, later its paraphrase or near miss: other "
        "numbers, other todo text, other action, negation, ...), new calculator requests and "
        "the same asked later with other numbers or in other words, free-form calculator and "
        f"todo requests only a model can plan ({len(LLM_ONLY)} of them and "
        f"{len(CANNED) - len(LLM_ONLY)} paraphrases: 'I bought 3 boxes of 12 eggs, how many "
        f"eggs is that', ...), and exact repeats. The rule planner plans {rules_plan} of the "
        f"{len(stream)} requests ({ratio(rules_plan, len(stream))}); {llm_only} "
        f"({ratio(llm_only, len(stream))}) are the model-only ones; it rightly refuses the "
        f"other {len(stream) - rules_plan - llm_only} (the pairs' negations). Every "
        f"configuration starts with the {len(SEED_TODOS)} todos of tests/oracle.py "
        "(SEED_TODOS, ids 1-10), which the pairs and the todo requests name.",
        f"Each configuration runs the same stream in order, from a fresh data directory, "
        f"against a local endpoint ({LATENCY_S} s per call, {ENDPOINT_MODEL} priced at "
        f"{PLAN_TOKENS[0]} prompt + {PLAN_TOKENS[1]} completion tokens per call, the prompt "
        "size measured with crane eval on a real model) standing in for the model: it answers "
        "a hand-written correct plan for the model-only requests and their paraphrases, and "
        "the rule planner's plan (or a decline where the rules refuse) for the rest; one "
        "warm-up run as another user is not counted. LLM calls = chat requests the endpoint "
        "received; cost = sum of the responses' cost_usd.",
        "Baseline: cache off, pattern-first off: the endpoint plans every request. Ratios "
        "(avoided, hit rate) are of the baseline's calls and of the stream length.",
        "Wrong answers: positions where a cache-on configuration's (status, answer) differs "
        "from the same configuration's without the cache (created_at dropped), plus one if the "
        "final todo lists differ. Cache hits by level: "
        + "; ".join(f"{LABELS[n]}: {runs[n]['hits_by_level']}" for n in REFERENCE)
        + "; by kind: "
        + "; ".join(f"{LABELS[n]}: {runs[n]['hits_by_kind']}" for n in REFERENCE)
        + ".",
        "Who planned each run (plan_source; None = refused): "
        + "; ".join(f"{LABELS[n]}: {r['plan_sources']}" for n, r in runs.items())
        + ". A near miss served from the cache is a template hit: its plan re-instantiated "
        "with the new request's numbers, checked against the run without the cache.",
        "Outcomes that differ from the baseline's at all (answers + final todo list), any "
        "configuration: "
        + ", ".join(f"{n}: {runs[n]['differs_from_baseline']}" for n in runs)
        + ". Failed runs per configuration (refused negations, todos that are gone or "
        "ambiguous): " + ", ".join(f"{n}: {r['failed']}" for n, r in runs.items()) + ".",
    ]
    return {
        "title": "Savings on a workload: LLM calls, cost and wrong answers",
        "columns": [
            "configuration",
            "LLM calls",
            "avoided",
            "avoided share",
            "cost USD",
            "saved USD",
            "cache hits",
            "hit rate",
            "wrong answers",
            "p50 ms",
        ],
        "rows": rows,
        "headline": headline,
        "notes": notes,
        "data": {
            "seed": SEED,
            "endpoint_latency_s": LATENCY_S,
            "stream": [list(item) for item in stream],
            "kinds": dict(kinds),
            "rules_plan": rules_plan,
            "rules_plan_share": ratio(rules_plan, len(stream)),
            "llm_only": llm_only,
            "llm_only_share": ratio(llm_only, len(stream)),
            "configs": {name: {"settings": CONFIGS[name]} | r for name, r in runs.items()},
        },
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Draw LLM calls (left axis) and cost (right axis) per configuration as paired bars."""
    configs = result["data"]["configs"]
    names = list(CONFIGS)
    fig, ax = figure("LLM calls and cost per configuration", "configuration", "LLM calls")
    x = range(len(names))
    counts = [configs[n]["llm_calls"] for n in names]
    calls = ax.bar([i - 0.2 for i in x], counts, 0.4, color="C0")
    ax.bar_label(calls, labels=[f"{c}\n({ratio(c, counts[0])}x)" for c in counts], fontsize=7)
    ax.set_ylim(0, max(counts) * 1.25)
    cost_ax = ax.twinx()
    cost_ax.set_ylabel("cost (USD)")
    costs = [configs[n]["cost_usd"] for n in names]
    cost_bars = cost_ax.bar([i + 0.2 for i in x], costs, 0.4, color="C1")
    cost_ax.bar_label(cost_bars, labels=[f"${c:.4f}" for c in costs], fontsize=7)
    cost_ax.set_ylim(0, max(costs) * 1.25)
    ax.set_xticks(list(x), ["baseline", "cache", "pattern-\nfirst", "cache +\npattern-first"])
    ax.legend([calls, cost_bars], ["LLM calls (x baseline)", "cost (USD)"], loc="upper right")
    save(fig, path)
