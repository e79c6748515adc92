from __future__ import annotations

from typing import Any

from graph.state import State
from nodes.pattern_fallback import pattern_fallback


def test_first_choice_is_labelled_pattern(services: Any) -> None:
    update = pattern_fallback(State(request="what is 6 times 7"), services=services)
    assert update["plan_source"] == "pattern" and update["plan"] is not None
    assert "fallback_reason" not in update and "error_type" not in update


def test_after_an_llm_error_it_is_the_fallback_and_says_why(services: Any) -> None:
    state = State(
        request="what is 6 times 7", llm_attempts=1, error_type="timeout", llm_error="too slow"
    )
    update = pattern_fallback(state, services=services)
    assert update["plan_source"] == "fallback"
    assert update["fallback_reason"] == "too slow" and update["error_type"] == "timeout"


def test_after_invalid_llm_plans_the_reason_names_the_validation_errors(services: Any) -> None:
    state = State(
        request="what is 6 times 7",
        llm_attempts=2,
        validation_errors=["step 1: unknown tool 'abacus'"],
    )
    update = pattern_fallback(state, services=services)
    assert update["plan_source"] == "fallback" and update["error_type"] == "validation_error"
    assert "abacus" in update["fallback_reason"]


def test_refusal_offline_is_unsupported_request(services: Any) -> None:
    update = pattern_fallback(State(request="compose a sonnet about autumn"), services=services)
    assert update["plan"] is None and update["error_type"] == "unsupported_request"
    assert "OPENAI_API_KEY" in update["error"]


def test_refusal_after_an_llm_error_keeps_its_type_and_both_causes(services: Any) -> None:
    state = State(
        request="compose a sonnet", llm_attempts=1, error_type="rate_limit", llm_error="slow down"
    )
    update = pattern_fallback(state, services=services)
    assert update["error_type"] == "rate_limit"
    assert "slow down" in update["error"] and "OPENAI_API_KEY" in update["error"]
