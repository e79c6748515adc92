"""Smoke tests of the benchmark sections: each runs in quick mode, is well formed, correct and plots."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench import concurrency, endtoend, overhead, savings
from bench.common import rule_plan
from bench.workload import OPERATIONS, Requests
from graph.pattern_planner import plan_request
from tests.bench_checks import check_section


def test_endtoend_hits_are_hits_with_the_misses_answers(tmp_path: Path) -> None:
    data = check_section(endtoend, tmp_path)["data"]
    assert data["problems"] == []
    misses = len(data["miss_ms"])
    assert misses >= 1
    assert data["miss_endpoint_calls"] == misses
    assert data["hit_endpoint_calls"] == 0
    assert all(len(times) == misses for times in data["hit_ms"].values())
    # Exact repeats, other numbers and other words reach three different levels.
    assert data["hit_levels"] == {"exact": misses, "template": misses, "semantic": misses}
    # Each miss's hits ran in an order of their own, every kind once.
    assert [sorted(kinds) for kinds in data["hit_orders"]] == [sorted(endtoend.HIT_KINDS)] * misses


def test_overhead_systems_agree(tmp_path: Path) -> None:
    data = check_section(overhead, tmp_path)["data"]
    assert data["disagreements"] == []
    assert {name: s["n"] for name, s in data["stats"].items()} == dict.fromkeys(
        overhead.SYSTEMS, 2 * len(overhead.CYCLE)
    )


def visited(app: Any, prompt: str) -> list[str]:
    return [
        node for update in app.stream({"prompt": prompt}, stream_mode="updates") for node in update
    ]


def test_bare_graph_has_crane_shape_and_path() -> None:
    from graph import build_graph

    crane = build_graph()  # offline: no API key in tests
    bare = overhead.bare_graph()
    assert set(bare.get_graph().nodes) == set(crane.get_graph().nodes)
    edges = {(e.source, e.target, e.conditional) for e in bare.get_graph().edges}
    assert edges == {(e.source, e.target, e.conditional) for e in crane.get_graph().edges}
    assert visited(crane, "what is 2 plus 2") == list(overhead.PATTERN_PATH)
    assert visited(bare, "what is 2 plus 2") == list(overhead.PATTERN_PATH)


def test_concurrency_runs_overlap(tmp_path: Path) -> None:
    levels = check_section(concurrency, tmp_path)["data"]["levels"]
    assert [m["concurrency"] for m in levels] == [1, 5]
    for m in levels:
        assert m["completed_by_llm"] == m["runs"]
        assert m["endpoint_calls"] == m["runs"]
        assert len(m["latency_ms"]) == m["runs"]
    assert levels[0]["max_in_flight"] == 1
    assert levels[-1]["max_in_flight"] > 1


def test_savings_cache_avoids_calls_without_wrong_answers(tmp_path: Path) -> None:
    result = check_section(savings, tmp_path)
    configs = result["data"]["configs"]
    stream = result["data"]["stream"]
    assert any(kind == "repeat" for _, kind in stream)
    assert configs["baseline"]["llm_calls"] >= len(stream)
    for name in ("cache", "cache+pattern_first"):
        assert configs[name]["wrong"] == []
        assert configs[name]["llm_calls"] < configs["baseline"]["llm_calls"]
        assert configs[name]["cost_usd"] < configs["baseline"]["cost_usd"]
        assert sum(level is not None for level in configs[name]["cache_hits"]) > 0
    # The stream holds requests the rules refuse, so pattern-first cannot avoid every call.
    data = result["data"]
    assert data["llm_only"] > 0 and data["rules_plan"] < len(stream)
    assert configs["pattern_first"]["llm_calls"] >= len(stream) - data["rules_plan"]
    # The table reports the wrong answers as counted, never hides them.
    wrong_column = result["columns"].index("wrong answers")
    assert [row[wrong_column] for row in result["rows"]] == ["reference", 0, "reference", 0]


@pytest.mark.parametrize("n", [12, 150])
def test_savings_stream_is_seeded_and_mixed(n: int) -> None:
    stream = savings.request_stream(n)
    assert stream == savings.request_stream(n)
    assert len(stream) == n
    kinds = Counter(kind for _, kind in stream)
    assert kinds["repeat"] > 0 and kinds["new"] > 0
    if n >= 150:
        assert kinds.keys() == {"new", "repeat", "other_numbers", "paraphrase", "near_miss"}
        assert any("todo" in text for text, _ in stream)
        # About a quarter only a model can plan: every one of them, new, repeated, paraphrased.
        llm_only = [(text, kind) for text, kind in stream if text in savings.CANNED]
        assert 0.2 <= len(llm_only) / n <= 0.3
        assert {text for text, _ in llm_only} == savings.CANNED.keys()
        assert {kind for _, kind in llm_only} == {"new", "repeat", "paraphrase"}


def test_model_only_requests_are_refused_by_the_rules_and_canned_for_the_model() -> None:
    assert len(savings.LLM_ONLY) >= 10
    for text, plan in savings.CANNED.items():
        assert plan_request(text).plan is None, text
        assert savings.model_plan(text) == plan
    rule_planned = "what is 15% of 200"
    assert savings.model_plan(rule_planned) == rule_plan(rule_planned)


def test_wrong_answers_reports_a_differing_answer_and_todo_list() -> None:
    stream = [("what is 2 plus 3", "new"), ("show my todos", "new"), ("what is 2 plus 3", "repeat")]
    todos = [[1, "buy milk", False]]
    reference = {
        "outcomes": [["completed", 5], ["completed", []], ["completed", 5]],
        "todos": todos,
    }
    same = {"outcomes": [list(o) for o in reference["outcomes"]], "todos": [list(todos[0])]}
    assert savings.wrong_answers(stream, same, reference) == []
    wrong = {
        "outcomes": [["completed", 5], ["completed", []], ["completed", 6]],
        "todos": [[1, "buy milk", True]],
    }
    assert savings.wrong_answers(stream, wrong, reference) == [
        {
            "position": 2,
            "request": "what is 2 plus 3",
            "got": ["completed", 6],
            "expected": ["completed", 5],
        },
        {"position": "final todo list", "got": [[1, "buy milk", True]], "expected": todos},
    ]


def test_requests_run_out_of_numbers_with_an_error() -> None:
    requests = Requests(1)
    assert len(set(requests.numbers(Requests.CAPACITY - 2))) == Requests.CAPACITY - 2
    with pytest.raises(ValueError, match="only 2 of"):
        requests.numbers(3)
    assert len(requests.numbers(2)) == 2


def test_full_runs_fit_in_one_source_of_numbers() -> None:
    # Three numbers a request; concurrency draws every level's prompts from one source.
    assert 3 * sum(n * r for n, r in concurrency.ROUNDS.items()) <= Requests.CAPACITY
    # endtoend: each miss and its renumbered hit.
    assert 3 * 2 * (2 * len(OPERATIONS)) <= Requests.CAPACITY
