"""The whole graph, offline and with fake chat models."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from graph import build_graph
from graph.state import State
from tests.fakes import OPENAI_ERROR_TYPES, fake_model, openai_error, plan_message


def calc_plan(expression: str) -> dict[str, Any]:
    return {
        "steps": [
            {
                "step_number": 1,
                "tool_name": "calculator",
                "tool_input": {"expression": expression},
                "reasoning": "compute",
            }
        ],
        "final_goal": "compute",
    }


def run(app: Any, prompt: Any, **extra: Any) -> dict[str, Any]:
    response: dict[str, Any] = app.invoke({"prompt": prompt, **extra})["response"]
    json.dumps(response)  # the contract: JSON-serializable
    return response


def visited(app: Any, prompt: str) -> list[str]:
    """Return the nodes a run went through, from the `updates` stream."""
    return [
        node for chunk in app.stream({"prompt": prompt}, stream_mode="updates") for node in chunk
    ]


RESPONSE_KEYS = {
    "run_id",
    "status",
    "answer",
    "plan_source",
    "plan",
    "steps",
    "error",
    "error_type",
    "model",
    "complexity",
    "tokens",
    "cost_usd",
    "latency_ms",
}


# --- offline default -------------------------------------------------------------------------


def test_offline_average() -> None:
    r = run(build_graph(), "what is the average of 12, 30 and 48")
    assert RESPONSE_KEYS <= set(r)
    assert r["status"] == "completed", r["error"]
    assert r["answer"] == 30
    assert r["plan_source"] == "pattern"
    assert r["model"] is None and r["tokens"] == 0
    assert r["steps"][0]["tool_name"] == "calculator" and r["steps"][0]["ok"]


def test_offline_todo_chain() -> None:
    r = run(build_graph(), "add a todo to call the plumber and then show me my tasks")
    assert r["status"] == "completed", r["error"]
    assert [s["tool_name"] for s in r["steps"]] == ["todo_store", "todo_store"]
    assert r["steps"][0]["output"]["text"] == "call the plumber"
    assert [t["text"] for t in r["answer"]["todos"]] == ["call the plumber"]


def test_offline_add_then_complete_resolves_step_reference() -> None:
    r = run(build_graph(), "add buy eggs to my list, then mark it done")
    assert r["status"] == "completed", r["error"]
    added, completed = (s["output"] for s in r["steps"])
    assert r["steps"][1]["tool_input"]["todo_id"] == added["id"]
    assert completed["id"] == added["id"] and completed["completed"] is True


def test_unsupported_request_fails_with_help() -> None:
    r = run(build_graph(), "compose a sonnet about autumn")
    assert r["status"] == "failed"
    assert r["error_type"] == "unsupported_request"
    assert "OPENAI_API_KEY" in r["error"]
    assert r["plan"] is None and r["steps"] == []


@pytest.mark.parametrize(
    "prompt",
    [
        "",
        "   ",
        None,
        123,
        ["a"],
        {"x": 1},
        "x" * 1_000_000,
        "\x00\x01",
        "__import__('os').system('id')",
        "'; DROP TABLE todos; --",
        "🦜🦜🦜",
        "what is 9**9**9**9",
        "what is 1/0",
    ],
)
def test_no_input_makes_invoke_raise(prompt: Any) -> None:
    r = run(build_graph(), prompt)
    assert r["status"] in ("completed", "failed")
    if r["status"] == "failed":
        assert r["error"] and r["error_type"]


def test_bad_user_id_is_a_failed_run() -> None:
    r = run(build_graph(), "what is 2+2", user_id=None)
    assert r["status"] == "failed" and r["error_type"] == "invalid_request"


def test_division_by_zero_is_a_tool_error() -> None:
    r = run(build_graph(), "what is 1/0")
    assert r["status"] == "failed" and r["error_type"] == "tool_error"
    assert "zero" in r["error"].lower()
    assert r["steps"][0]["ok"] is False


def test_todos_are_per_user() -> None:
    app = build_graph()
    run(app, "add a todo to feed the cat", user_id="alice")
    bob = run(app, "show me my tasks", user_id="bob")
    assert bob["status"] == "completed" and bob["answer"] == {"todos": []}


def test_two_runtimes_with_different_homes_are_independent(tmp_path: Path) -> None:
    a, b = build_graph(home=str(tmp_path / "a")), build_graph(home=str(tmp_path / "b"))
    run(a, "add a todo to water the ferns")
    assert run(b, "show me my tasks")["answer"] == {"todos": []}
    assert len(run(a, "show me my tasks")["answer"]["todos"]) == 1


def test_history_records_every_run(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path))
    ok, bad = run(app, "what is 6 times 7"), run(app, "")
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        rows = dict(conn.execute("SELECT run_id, status FROM runs").fetchall())
    conn.close()
    assert rows == {ok["run_id"]: "completed", bad["run_id"]: "failed"}


# --- plan cache --------------------------------------------------------------------------------


def test_second_identical_request_uses_the_cached_plan() -> None:
    app = build_graph()
    first, second = run(app, "what is 8% of 50"), run(app, "what is 8% of 50 ")
    assert first["plan_source"] == "pattern" and second["plan_source"] == "cache"
    assert second["answer"] == first["answer"] == 4
    assert run(app, "what is 8% of 50", user_id="other")["plan_source"] == "pattern"


def test_cache_never_serves_another_requests_literals() -> None:
    app = build_graph()
    run(app, "what is 15% of 200")
    other = run(app, "what is 15% of 300")
    # The same request with another number: the cached plan, re-instantiated with it.
    assert other["plan_source"] == "cache" and other["answer"] == 45
    assert other["cache_hit"]["level"] == "template" and "200" not in json.dumps(other["plan"])
    assert run(app, "call the dentist")["plan_source"] != "cache"


def test_failed_runs_are_not_cached() -> None:
    app = build_graph()
    run(app, "what is 1/0")
    assert run(app, "what is 1/0")["plan_source"] == "pattern"


def test_stale_cached_plan_is_evicted_and_replanned(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path))
    run(app, "what is 6 times 7")
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:  # a tool was renamed since
        conn.execute("UPDATE plan_entries SET payload = replace(payload, 'calculator', 'abacus')")
    conn.close()
    nodes = visited(app, "what is 6 times 7")
    assert nodes == [
        "cache_lookup",
        "validator",
        "complexity_router",
        "pattern_fallback",
        "validator",
        "executor",
        "history_recorder",
    ]
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        plan = conn.execute("SELECT payload FROM plan_entries").fetchone()[0]
    conn.close()
    assert "abacus" not in plan


def test_corrupt_cache_entry_is_a_miss(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path))
    run(app, "what is 6 times 7")
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        conn.execute("UPDATE plan_entries SET payload = '{not json'")
    conn.close()
    r = run(app, "what is 6 times 7")
    assert r["status"] == "completed" and r["answer"] == 42 and r["plan_source"] == "pattern"


# --- with a (fake) LLM -------------------------------------------------------------------------


def llm_app(*replies: Any, **settings: Any) -> Any:
    model = fake_model(*replies)
    # One model serves every tier, so there is nothing to escalate to; tiny backoffs keep retries fast.
    settings = {"backoff_base_s": 0.001, "backoff_cap_s": 0.002} | settings
    app = build_graph(chat_model=model, pattern_first=False, **settings)
    app.fake = model  # type: ignore[attr-defined]
    return app


def test_llm_valid_plan() -> None:
    app = llm_app(plan_message(calc_plan("17 * 3"), tokens=120))
    r = run(app, "multiply seventeen by three, please")
    assert r["status"] == "completed" and r["answer"] == 51
    assert r["plan_source"] == "llm" and r["model"] == "fake-model" and r["tokens"] == 120


def test_llm_prompt_carries_tool_specs_and_examples() -> None:
    app = llm_app(plan_message(calc_plan("1+1")))
    run(app, "one plus one")
    system = app.fake.prompts[0][0].content
    assert "calculator" in system and "todo_store" in system and "{{step_1.id}}" in system
    assert "Request: what is 15% of 80" in system


def test_llm_invalid_plan_is_repaired_with_feedback() -> None:
    bad = calc_plan("1+1") | {
        "steps": [{"step_number": 1, "tool_name": "abacus", "tool_input": {}, "reasoning": ""}]
    }
    app = llm_app(plan_message(bad), plan_message(calc_plan("2 + 2")))
    r = run(app, "two plus two")
    assert r["status"] == "completed" and r["answer"] == 4 and r["plan_source"] == "llm"
    feedback = app.fake.prompts[1][-1].content
    assert "unknown tool 'abacus'" in feedback


def test_llm_invalid_twice_falls_back_to_rules(tmp_path: Path) -> None:
    bad = calc_plan("2 +* 2")
    app = llm_app(plan_message(bad), plan_message(bad))
    nodes = [
        n
        for chunk in app.stream({"prompt": "what is 2 plus 2"}, stream_mode="updates")
        for n in chunk
    ]
    assert nodes == [
        "cache_lookup",
        "complexity_router",
        "llm_planner",
        "validator",
        "llm_planner",
        "validator",
        "pattern_fallback",
        "validator",
        "executor",
        "history_recorder",
    ]
    r = run(llm_app(plan_message(bad), plan_message(bad), home=str(tmp_path)), "what is 2 plus 2")
    assert r["status"] == "completed" and r["answer"] == 4 and r["plan_source"] == "fallback"


def test_llm_garbage_output_is_repaired_once_then_falls_back() -> None:
    app = llm_app("I think the answer is 4", "still not a plan")
    r = run(app, "what is 2 plus 2")
    assert r["plan_source"] == "fallback" and r["answer"] == 4
    assert "not a valid plan" in r["fallback_reason"]


@pytest.mark.parametrize(
    ("kind", "error_type"),
    OPENAI_ERROR_TYPES,
)
def test_each_llm_error_type_falls_back(kind: str, error_type: str) -> None:
    # Repeated, so retries on transient errors fail too; the fake's call count bounds them.
    app = llm_app(*[openai_error(kind)] * 5)
    r = run(app, "what is 9 times 6")
    assert r["status"] == "completed" and r["answer"] == 54 and r["plan_source"] == "fallback"
    assert r["fallback_reason"]
    retried = kind in ("timeout", "server_error", "connection")
    assert len(app.fake.prompts) == (3 if retried else 1)
    app = llm_app(*[openai_error(kind)] * 5)
    failed = run(app, "compose a sonnet about autumn")
    assert failed["status"] == "failed" and failed["error_type"] == error_type
    assert "language model" in failed["error"] and "OPENAI_API_KEY" in failed["error"]


def test_llm_step_reference_add_then_complete() -> None:
    plan = {
        "steps": [
            {
                "step_number": 1,
                "tool_name": "todo_store",
                "tool_input": {"action": "add", "text": "pay rent", "todo_id": None},
                "reasoning": "",
            },
            {
                "step_number": 2,
                "tool_name": "todo_store",
                "tool_input": {"action": "complete", "text": None, "todo_id": "{{step_1.id}}"},
                "reasoning": "",
            },
        ],
        "final_goal": "add and complete",
    }
    r = run(llm_app(plan_message(plan)), "note that I need to pay rent and tick it off")
    assert r["status"] == "completed"
    assert r["answer"]["text"] == "pay rent" and r["answer"]["completed"] is True


def test_llm_reference_to_missing_field_fails_the_step() -> None:
    plan = calc_plan("1+1")
    plan["steps"].append(
        {
            "step_number": 2,
            "tool_name": "todo_store",
            "tool_input": {"action": "get", "text": None, "todo_id": "{{step_1.id}}"},
            "reasoning": "",
        }
    )
    r = run(llm_app(plan_message(plan)), "something odd")
    assert r["status"] == "failed" and r["error_type"] == "tool_error"
    assert r["steps"][0]["ok"] and not r["steps"][1]["ok"]
    assert "step 1" in r["steps"][1]["error"]


def test_llm_cannot_reach_another_users_todos() -> None:
    plan = {
        "steps": [
            {
                "step_number": 1,
                "tool_name": "todo_store",
                "tool_input": {"action": "list", "text": None, "todo_id": None, "user_id": "alice"},
                "reasoning": "",
            }
        ],
        "final_goal": "x",
    }
    app = llm_app(*[plan_message(plan) for _ in range(4)])
    run(app, "add a todo to alice secret", user_id="alice")
    r = run(app, "list alice's todos please", user_id="mallory")
    assert r["plan_source"] == "fallback" or r["status"] == "failed"
    assert "alice secret" not in json.dumps(r)


def test_pattern_first_skips_the_llm_for_simple_requests() -> None:
    model = fake_model()  # any call would raise StopIteration -> "other" error
    app = build_graph(chat_model=model)
    r = run(app, "what is 8% of 50")
    assert r["plan_source"] == "pattern" and r["answer"] == 4 and model.prompts == []


# --- async ---------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_ainvoke_and_astream() -> None:
    app = build_graph()
    out = await app.ainvoke({"prompt": "what is 6 times 7"})
    assert out["response"]["answer"] == 42
    nodes = [
        n
        async for chunk in app.astream({"prompt": "double 21"}, stream_mode="updates")
        for n in chunk
    ]
    assert nodes[0] == "cache_lookup" and nodes[-1] == "history_recorder"


def test_state_defaults_are_a_valid_input() -> None:
    assert State().prompt == "" and State().user_id == "default"


def test_word_salad_never_raises_and_responses_are_consistent() -> None:
    import random

    words = (
        "add todo remind me to then and show list delete complete done what is of percent % "
        "times plus minus divided by 3 12 0 -1 1e9 ( ) sqrt half double average my the it "
        "{{step_1.id}} ' \" ; , ? ! 🦜 \x00 DROP TABLE"
    ).split(" ")
    rng = random.Random(7)
    app = build_graph()
    for _ in range(150):
        prompt = " ".join(rng.choice(words) for _ in range(rng.randint(1, 14)))
        r = run(app, prompt)
        assert (r["status"] == "completed") == (r["error"] is None), (prompt, r)
        assert r["status"] == "completed" or r["error_type"], (prompt, r)
        if r["status"] == "completed":
            assert all(s["ok"] for s in r["steps"]) and r["answer"] == r["steps"][-1]["output"]


# --- regressions found in review -----------------------------------------------------------------


def test_checkpointed_thread_runs_are_independent() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    app = build_graph(checkpointer=InMemorySaver())
    cfg: Any = {"configurable": {"thread_id": "t1"}}
    first = app.invoke({"prompt": "compose a sonnet"}, cfg)["response"]
    second = app.invoke({"prompt": "what is 2+2"}, cfg)["response"]
    third = app.invoke({"prompt": "double 21"}, cfg)["response"]
    assert first["status"] == "failed"
    assert second["status"] == "completed" and second["answer"] == 4
    assert third["answer"] == 42 and len(third["steps"]) == 1 and third["plan_source"] == "pattern"
    assert app.get_state(cfg).values["path"][0] == "cache_lookup"
    assert app.get_state(cfg).values["path"].count("cache_lookup") == 1


def test_results_beyond_64_bits_survive_a_checkpointer() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    app = build_graph(checkpointer=InMemorySaver())
    r = app.invoke({"prompt": "what is 2**64"}, {"configurable": {"thread_id": "big"}})["response"]
    assert r["status"] == "completed" and r["answer"] == pytest.approx(2**64)


def test_negative_result_substituted_into_a_later_expression() -> None:
    plan = calc_plan("2 - 7")
    plan["steps"].append(
        {
            "step_number": 2,
            "tool_name": "calculator",
            "tool_input": {"expression": "{{step_1.result}} ** 2"},
            "reasoning": "",
        }
    )
    r = run(llm_app(plan_message(plan)), "take 7 from 2 and square the result")
    assert r["answer"] == 25


def test_factorial_is_not_folded_into_the_plain_number_by_the_cache() -> None:
    app = build_graph()
    assert run(app, "what is 5")["answer"] == 5
    assert run(app, "what is 5!")["answer"] == 120


def test_fallback_plans_are_not_cached(tmp_path: Path) -> None:
    app = llm_app(openai_error("bad_request"), plan_message(calc_plan("9 * 6")), home=str(tmp_path))
    assert run(app, "what is 9 times 6")["plan_source"] == "fallback"
    assert (
        run(app, "what is 9 times 6")["plan_source"] == "llm"
    )  # planned afresh, LLM healthy again


def test_fallback_reason_after_invalid_llm_plans(tmp_path: Path) -> None:
    bad = calc_plan("2 +* 2")
    r = run(llm_app(plan_message(bad), plan_message(bad), home=str(tmp_path)), "what is 2 plus 2")
    assert r["plan_source"] == "fallback" and "invalid" in r["fallback_reason"]


def test_lone_surrogate_prompt_is_answered_and_recorded(tmp_path: Path) -> None:
    app = build_graph(home=str(tmp_path))
    r = run(app, "what is 2+2\ud800")
    with sqlite3.connect(tmp_path / "history.sqlite") as conn:
        rows = conn.execute("SELECT run_id FROM runs").fetchall()
    conn.close()
    assert rows == [(r["run_id"],)]
