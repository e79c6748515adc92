from __future__ import annotations

from typing import Any, get_args

import pytest

from graph.plan import Plan, PlanStep
from graph.routing import (
    ESCALATING_ERRORS,
    MAX_LLM_CALLS,
    TRANSIENT_ERRORS,
    RetrySettings,
    next_attempt,
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


SETTINGS = RetrySettings(retry_after_max_s=2.0, retry_deadline_s=8.0)


def failed(error_type: str, **kw: Any) -> State:
    """State after a failed attempt on the fast tier (first attempt unless told otherwise)."""
    fields: dict[str, Any] = {"tier": "fast", "attempt": 1, "llm_attempts": 1} | kw
    return state(error_type=error_type, **fields)


# One row per line of the policy table: (state after the failure, expected next attempt or None).
POLICY_ROWS: list[tuple[str, State, tuple[str, str, float] | None]] = [
    # rate limit: one retry after a short Retry-After, else give up
    ("429 short Retry-After", failed("rate_limit", retry_after_s=1.5), ("retry", "fast", 1.5)),
    (
        "429 Retry-After at the limit",
        failed("rate_limit", retry_after_s=2.0),
        ("retry", "fast", 2.0),
    ),
    ("429 long Retry-After", failed("rate_limit", retry_after_s=2.5, next_tier="smart"), None),
    ("429 no Retry-After", failed("rate_limit", retry_after_s=None, next_tier="smart"), None),
    ("429 twice", failed("rate_limit", retry_after_s=0.1, rate_limit_retried=True), None),
    ("429 past the deadline", failed("rate_limit", retry_after_s=1.0, llm_wait_s=7.5), None),
    # timeout, connection error, 5xx: two backoff retries, then the next tier, then give up
    ("timeout 1st", failed("timeout", retry_after_s=0.3), ("retry", "fast", 0.3)),
    (
        "connection 2nd",
        failed("connection", attempt=2, retries=1, retry_after_s=0.7),
        ("retry", "fast", 0.7),
    ),
    (
        "5xx after a repair still gets its 2 retries",
        failed("server_error", attempt=3, repairs=1, retries=1, retry_after_s=0.1),
        ("retry", "fast", 0.1),
    ),
    (
        "5xx 3rd, escalate",
        failed("server_error", attempt=3, retries=2, next_tier="smart"),
        ("escalate", "smart", 0.0),
    ),
    ("5xx 3rd, no tier", failed("server_error", attempt=3, retries=2, next_tier=None), None),
    (
        "timeout past deadline",
        failed("timeout", retry_after_s=1.0, llm_wait_s=7.5, next_tier="smart"),
        ("escalate", "smart", 0.0),
    ),
    # invalid output or a rejected plan: one repair, then the next tier, then give up
    ("invalid output", failed("invalid_output"), ("repair", "fast", 0.0)),
    (
        "invalid output again",
        failed("invalid_output", repairs=1, next_tier="smart"),
        ("escalate", "smart", 0.0),
    ),
    ("invalid output, no tier", failed("invalid_output", repairs=1), None),
    (
        "rejected plan",
        state(
            plan=PLAN,
            plan_source="llm",
            validation_errors=["bad"],
            tier="fast",
            attempt=1,
            llm_attempts=1,
        ),
        ("repair", "fast", 0.0),
    ),
    (
        "rejected plan again",
        state(
            plan=PLAN,
            plan_source="llm",
            validation_errors=["bad"],
            tier="fast",
            attempt=2,
            repairs=1,
            llm_attempts=2,
            next_tier="smart",
        ),
        ("escalate", "smart", 0.0),
    ),
    # no retry on that model: next tier where it can help, else give up
    ("404 unknown model", failed("not_found", next_tier="smart"), ("escalate", "smart", 0.0)),
    ("400 bad request", failed("bad_request", next_tier="smart"), ("escalate", "smart", 0.0)),
    (
        "context length",
        failed("context_length", next_tier="reasoning"),
        ("escalate", "reasoning", 0.0),
    ),
    ("400, no tier", failed("bad_request"), None),
    ("401 auth", failed("auth", next_tier="smart"), None),
    (
        "breaker opened meanwhile",
        failed("circuit_open", next_tier="smart"),
        ("escalate", "smart", 0.0),
    ),
    ("declined", failed("declined", next_tier="smart"), None),
    ("budget spent", failed("budget_exhausted", next_tier="smart"), None),
    ("other", failed("other", next_tier="smart"), None),
    ("call cap", failed("timeout", attempt=1, retry_after_s=0.1, llm_attempts=MAX_LLM_CALLS), None),
]


@pytest.mark.parametrize(
    ("row", "before", "expected"), POLICY_ROWS, ids=[r[0] for r in POLICY_ROWS]
)
def test_policy_table(row: str, before: State, expected: tuple[str, str, float] | None) -> None:
    attempt = next_attempt(before, SETTINGS)
    got = None if attempt is None else (attempt.kind, attempt.tier, attempt.wait_s)
    assert got == expected
    if attempt is not None:
        assert attempt.reason  # every decision says why, for traces
    # the edges agree with the attempt the next llm_planner run will make
    if before.error_type is not None:
        assert route_after_llm_planner(before, SETTINGS) == (
            "llm_planner" if expected else "pattern_fallback"
        )
    else:
        assert route_after_validator(before, SETTINGS) == (
            "llm_planner" if expected else "pattern_fallback"
        )


def test_retry_after_limit_is_configurable() -> None:
    long_wait = failed("rate_limit", retry_after_s=5.0)
    assert next_attempt(long_wait, SETTINGS) is None
    assert next_attempt(long_wait, RetrySettings(retry_after_max_s=10.0)) is not None


def test_every_llm_error_type_has_a_policy() -> None:
    handled = {"rate_limit", *TRANSIENT_ERRORS, *ESCALATING_ERRORS, "invalid_output"}
    give_up = {"auth", "declined", "budget_exhausted", "other"}
    assert handled | give_up == set(get_args(LlmErrorType))


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"plan": PLAN, "plan_source": "llm", "validation_errors": []}, "executor"),
        ({"plan": PLAN, "plan_source": "pattern", "validation_errors": []}, "executor"),
        (
            {"plan": PLAN, "plan_source": "llm", "validation_errors": ["bad"], "tier": "fast"},
            "llm_planner",
        ),
        (
            {
                "plan": PLAN,
                "plan_source": "llm",
                "validation_errors": ["bad"],
                "tier": "fast",
                "repairs": 1,
            },
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
