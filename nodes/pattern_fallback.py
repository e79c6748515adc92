"""Plan with the offline rule-based planner: first choice offline or for simple requests, else the fallback."""

from __future__ import annotations

from typing import Any

from graph.pattern_planner import plan_request
from graph.services import Services
from graph.state import ErrorType, State


def llm_failure(state: State) -> tuple[str, ErrorType] | None:
    """Return why the LLM path gave up on this run and its error type, or None if it was not tried."""
    if state.llm_attempts == 0:
        if state.fallback_reason and state.error_type is not None:
            return state.fallback_reason, state.error_type  # the router found no model able to plan
        return None
    if state.error_type is not None:
        return state.llm_error or "the model call failed", state.error_type
    if state.validation_errors:
        return "the model's plans were invalid: " + "; ".join(
            state.validation_errors
        ), "validation_error"
    return "the model's plan could not be used", "other"


def pattern_fallback(state: State, *, services: Services) -> dict[str, Any]:
    """Plan the request with rules, or fail the run with what Crane can do instead; never guesses."""
    del services  # the rule planner needs nothing from the runtime; bound for a uniform signature
    failure = llm_failure(state)
    result = plan_request(state.request)
    update: dict[str, Any] = {"path": ["pattern_fallback"]}
    if failure is not None:
        # Kept even when the rules succeed: history and metrics count why the LLM path failed.
        update |= {"fallback_reason": failure[0], "error_type": failure[1]}
    if result.plan is not None:
        return update | {
            "plan": result.plan,
            "plan_source": "pattern" if failure is None else "fallback",
        }
    error = result.reason or "The rule-based planner cannot plan this request."
    if failure is not None:
        error = f"The language model could not plan this request ({failure[0]}). {error}"
    return update | {
        "plan": None,
        "plan_source": None,
        "error": error,
        "error_type": failure[1] if failure is not None else "unsupported_request",
    }
