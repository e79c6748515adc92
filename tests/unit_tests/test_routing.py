from __future__ import annotations

from typing import Any, get_args

import pytest

from graph.plan import Plan, PlanStep
from graph.routing import (
    LLM_ERROR_ROUTES,
    route_after_cache_lookup,
    route_after_complexity_router,
    route_after_llm_planner,
    route_after_pattern_fallback,
    route_after_validator,
)
from graph.state import LlmErrorType, State

PLAN = Plan(
    steps=[PlanStep(step_number=1, tool_name="calculator", tool_input={"expression": "1+1"})],
    final_goal="add",
)


def state(**kw: Any) -> State:
    return State(prompt="x", request="x", **kw)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"error": "empty", "error_type": "invalid_request"}, "history_recorder"),
        ({"plan": PLAN, "plan_source": "cache"}, "validator"),
        ({}, "complexity_router"),
    ],
)
def test_route_after_cache_lookup(fields: dict[str, Any], expected: str) -> None:
    assert route_after_cache_lookup(state(**fields)) == expected


@pytest.mark.parametrize(
    ("tier", "expected"),
    [("fast", "llm_planner"), ("smart", "llm_planner"), (None, "pattern_fallback")],
)
def test_route_after_complexity_router(tier: str | None, expected: str) -> None:
    assert route_after_complexity_router(state(tier=tier)) == expected


def test_route_after_llm_planner_valid_plan_goes_to_validator() -> None:
    assert route_after_llm_planner(state(plan=PLAN, plan_source="llm")) == "validator"


def test_route_after_llm_planner_impossible_state_raises() -> None:
    with pytest.raises(ValueError, match="neither a plan nor an error"):
        route_after_llm_planner(state())


@pytest.mark.parametrize("error_type", ["rate_limit", "timeout", "server_error", "auth", "other"])
def test_route_after_llm_planner_each_failure_type_falls_back(error_type: str) -> None:
    assert (
        route_after_llm_planner(state(error_type=error_type, llm_attempts=1)) == "pattern_fallback"
    )


def test_route_after_llm_planner_invalid_output_is_repaired_once() -> None:
    assert route_after_llm_planner(state(error_type="invalid_output", repairs=0)) == "llm_planner"
    assert (
        route_after_llm_planner(state(error_type="invalid_output", repairs=1)) == "pattern_fallback"
    )


def test_every_llm_error_type_has_a_route() -> None:
    assert set(LLM_ERROR_ROUTES) == set(get_args(LlmErrorType))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"plan": PLAN, "plan_source": "llm", "validation_errors": []}, "executor"),
        ({"plan": PLAN, "plan_source": "pattern", "validation_errors": []}, "executor"),
        (
            {"plan": PLAN, "plan_source": "llm", "validation_errors": ["bad"], "repairs": 0},
            "llm_planner",
        ),
        (
            {"plan": PLAN, "plan_source": "llm", "validation_errors": ["bad"], "repairs": 1},
            "pattern_fallback",
        ),
        (
            {"plan": PLAN, "plan_source": "cache", "validation_errors": ["stale"]},
            "complexity_router",
        ),
        (
            {"plan": PLAN, "plan_source": "pattern", "validation_errors": ["bad"]},
            "history_recorder",
        ),
        (
            {"plan": PLAN, "plan_source": "fallback", "validation_errors": ["bad"]},
            "history_recorder",
        ),
    ],
)
def test_route_after_validator(fields: dict[str, Any], expected: str) -> None:
    assert route_after_validator(state(**fields)) == expected


@pytest.mark.parametrize(("plan", "expected"), [(PLAN, "validator"), (None, "history_recorder")])
def test_route_after_pattern_fallback(plan: Plan | None, expected: str) -> None:
    assert route_after_pattern_fallback(state(plan=plan)) == expected
