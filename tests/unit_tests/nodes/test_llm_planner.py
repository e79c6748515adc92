from __future__ import annotations

from typing import Any

import pytest

from graph.plan import Plan, PlanStep
from graph.state import State
from nodes.llm_planner import llm_planner, planner_messages, system_prompt
from tests.fakes import OPENAI_ERROR_TYPES, fake_model, make_services, openai_error, plan_message

GOOD = {
    "steps": [
        {
            "step_number": 1,
            "tool_name": "calculator",
            "tool_input": {"expression": "6*7"},
            "reasoning": "r",
        }
    ],
    "final_goal": "multiply",
}


def services_with(tmp_path: Any, *replies: Any) -> Any:
    return make_services(tmp_path, models={"fast": fake_model(*replies)})


def test_success_writes_plan_model_and_tokens(tmp_path: Any) -> None:
    services = services_with(tmp_path, plan_message(GOOD, tokens=77))
    update = llm_planner(State(request="six times seven", tier="fast", tokens=3), services=services)
    assert update["plan"] == Plan.model_validate(GOOD)
    assert update["plan_source"] == "llm" and update["error_type"] is None
    assert (
        update["tokens"] == 80 and update["model"] == "fake-model" and update["llm_attempts"] == 1
    )


@pytest.mark.parametrize(
    ("kind", "error_type"),
    OPENAI_ERROR_TYPES,
)
def test_errors_are_classified_never_raised(tmp_path: Any, kind: str, error_type: str) -> None:
    update = llm_planner(
        State(request="x", tier="fast"), services=services_with(tmp_path, openai_error(kind))
    )
    assert update["error_type"] == error_type
    assert update["plan"] is None and update["llm_error"]


def test_unexpected_exception_is_other(tmp_path: Any) -> None:
    update = llm_planner(
        State(request="x", tier="fast"), services=services_with(tmp_path, RuntimeError("boom"))
    )
    assert update["error_type"] == "other" and "boom" in update["llm_error"]


@pytest.mark.parametrize(
    "reply",
    [
        "plain text, no plan",
        plan_message({"steps": "not a list", "final_goal": "x"}),
        plan_message({"final_goal": "missing steps"}),
        plan_message(GOOD | {"extra": 1}),
    ],
)
def test_unparseable_output_is_invalid_output(tmp_path: Any, reply: Any) -> None:
    update = llm_planner(State(request="x", tier="fast"), services=services_with(tmp_path, reply))
    assert update["error_type"] == "invalid_output" and update["plan"] is None


def test_repair_sends_the_rejected_plan_and_the_errors(tmp_path: Any) -> None:
    services = services_with(tmp_path, plan_message(GOOD))
    bad = Plan(steps=[PlanStep(step_number=1, tool_name="abacus", tool_input={})], final_goal="x")
    state = State(
        request="six times seven",
        tier="fast",
        plan=bad,
        plan_source="llm",
        validation_errors=["step 1: unknown tool 'abacus'"],
        llm_attempts=1,
    )
    update = llm_planner(state, services=services)
    assert update["repairs"] == 1 and update["llm_attempts"] == 2
    sent = services.models["fast"].prompts[0]
    assert "abacus" in sent[-2].content and "unknown tool 'abacus'" in sent[-1].content


def test_first_attempt_has_no_feedback(tmp_path: Any) -> None:
    services = make_services(tmp_path)
    messages = planner_messages(State(request="hi"), services)
    assert [m.type for m in messages] == ["system", "human"]


def test_system_prompt_is_generated_from_the_registry(tmp_path: Any) -> None:
    prompt = system_prompt(make_services(tmp_path))
    assert '"expression"' in prompt and '"todo_id"' in prompt and "user_id" not in prompt


def test_a_tier_without_a_model_is_an_error_not_a_crash(tmp_path: Any) -> None:
    services = services_with(tmp_path)
    update = llm_planner(State(request="x", tier="reasoning"), services=services)
    assert update["error_type"] == "other" and "reasoning" in update["llm_error"]
