from __future__ import annotations

import json
import time
from typing import Any

from graph.plan import Plan
from graph.state import State
from nodes.history_recorder import history_recorder

PLAN = Plan.model_validate(
    {
        "steps": [
            {"step_number": 1, "tool_name": "calculator", "tool_input": {"expression": "2+2"}}
        ],
        "final_goal": "x",
    }
)
STEP = {
    "step_number": 1,
    "tool_name": "calculator",
    "tool_input": {"expression": "2+2"},
    "ok": True,
    "output": 4,
    "error": None,
}


def done(**kw: Any) -> State:
    fields: dict[str, Any] = {
        "run_id": "r1",
        "started_at": time.time(),
        "prompt": "2+2",
        "request": "2+2",
        "normalized": "2+2",
        "plan": PLAN,
        "plan_source": "pattern",
        "steps": [STEP],
        "answer": 4,
        "complexity": "simple",
    }
    return State(**(fields | kw))


def test_completed_response_follows_the_contract(services: Any) -> None:
    response = history_recorder(done(), services=services)["response"]
    assert (
        response["status"] == "completed" and response["answer"] == 4 and response["error"] is None
    )
    assert response["plan"]["steps"][0]["tool_name"] == "calculator"
    assert response["latency_ms"] >= 0 and response["model"] is None
    json.dumps(response)
    assert services.history.runs[0]["status"] == "completed"
    # validated and executed: cached, and an example for the LLM from now on
    hit = services.cache.lookup("default", services.signature, "2+2")
    assert hit is not None and hit.run_id == response["run_id"]
    example = services.examples.similar("default", services.signature, "2+2", 3)
    assert [e.run_id for e in example] == [response["run_id"]]


def test_failed_run_is_recorded_not_cached(services: Any) -> None:
    bad_step = STEP | {"ok": False, "output": None, "error": "Division by zero is undefined."}
    state = done(
        steps=[bad_step],
        answer=None,
        error="Step 1 (calculator) failed: Division by zero",
        error_type="tool_error",
    )
    response = history_recorder(state, services=services)["response"]
    assert response["status"] == "failed" and response["error_type"] == "tool_error"
    assert services.cache.lookup("default", services.signature, "2+2") is None
    assert services.examples.similar("default", services.signature, "2+2", 3) == []


def test_cached_plan_that_fails_is_evicted_and_its_run_stops_being_an_example(
    services: Any,
) -> None:
    services.cache.store_plan("default", services.signature, "2+2", PLAN, "r0")
    services.examples.add("default", services.signature, "2+2", PLAN, "r0")
    hit = services.cache.lookup("default", services.signature, "2+2")
    state = done(
        plan_source="cache",
        cache_hit=hit.as_dict(),
        cache_entry_id=hit.entry_id,
        steps=[STEP | {"ok": False, "error": "x"}],
        error="x",
        error_type="tool_error",
    )
    history_recorder(state, services=services)
    assert services.cache.lookup("default", services.signature, "2+2") is None
    assert services.examples.similar("default", services.signature, "2+2", 3) == []


def test_rejected_rule_plan_reports_the_validation_errors(services: Any) -> None:
    state = done(steps=[], answer=None, validation_errors=["step 1: too big"])
    response = history_recorder(state, services=services)["response"]
    assert response["status"] == "failed" and response["error_type"] == "validation_error"
    assert "too big" in response["error"]


def test_completed_fallback_run_hides_the_llm_error_but_explains_it(services: Any) -> None:
    state = done(
        plan_source="fallback",
        error_type="timeout",
        llm_error="the model did not answer in time",
        fallback_reason="the model did not answer in time",
    )
    response = history_recorder(state, services=services)["response"]
    assert response["status"] == "completed" and response["error_type"] is None
    assert response["fallback_reason"] == "the model did not answer in time"
    assert services.history.runs[0]["error_type"] == "timeout"


def test_broken_history_store_still_answers(services: Any) -> None:
    def broken(run: Any) -> None:
        raise OSError("read-only file system")

    services.history.record = broken
    assert history_recorder(done(), services=services)["response"]["status"] == "completed"


def test_history_names_the_examples_only_when_the_llm_saw_them(services: Any) -> None:
    shown = [{"request": "1+1", "plan": PLAN.model_dump(), "run_id": "r9", "similarity": 0.9}]
    history_recorder(done(examples=shown, llm_attempts=1, plan_source="llm"), services=services)
    history_recorder(done(examples=shown, llm_attempts=0), services=services)
    assert [r["examples"] for r in services.history.runs] == [["r9"], []]
