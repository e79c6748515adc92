"""Plan with the offline rule-based planner: first choice offline or for simple requests, else the fallback."""

from __future__ import annotations

from typing import Any

from graph.pattern_planner import plan_request
from graph.services import Services
from graph.state import State


def pattern_fallback(state: State, *, services: Services) -> dict[str, Any]:
    """Plan the request with rules, or fail the run with what Crane can do instead; never guesses."""
    del services  # the rule planner needs nothing from the runtime; bound for a uniform signature
    llm_failed = state.llm_attempts > 0
    result = plan_request(state.request)
    update: dict[str, Any] = {"path": ["pattern_fallback"]}
    if result.plan is not None:
        return update | {
            "plan": result.plan,
            "plan_source": "fallback" if llm_failed else "pattern",
        }
    error = result.reason or "The rule-based planner cannot plan this request."
    if llm_failed:
        cause = state.llm_error or "; ".join(state.validation_errors) or "it failed"
        error = f"The language model could not plan this request ({cause}). {error}"
    # The root cause is the LLM path's failure when there was one.
    error_type = state.error_type or ("validation_error" if state.validation_errors else None)
    return update | {
        "plan": None,
        "plan_source": None,
        "error": error,
        "error_type": error_type if llm_failed and error_type else "unsupported_request",
    }
