"""Pure routing functions: each reads what the node before it decided and names the next node."""

from __future__ import annotations

from typing import Literal

from graph.state import State

MAX_REPAIRS = 1
"""An LLM plan that fails parsing or validation is sent back this many times before the fallback."""

LLM_ERROR_ROUTES: dict[str, Literal["llm_planner", "pattern_fallback"]] = {
    "rate_limit": "pattern_fallback",
    "timeout": "pattern_fallback",
    "server_error": "pattern_fallback",
    "auth": "pattern_fallback",
    "invalid_output": "llm_planner",  # repaired once with the parse error as feedback
    "other": "pattern_fallback",
}
"""The edge each LLM error type takes after `llm_planner`."""


def route_after_cache_lookup(
    state: State,
) -> Literal["validator", "complexity_router", "history_recorder"]:
    """Re-validate a cached plan, plan a miss, or record a rejected request."""
    if state.error is not None:
        return "history_recorder"
    if state.plan is not None and state.plan_source == "cache":
        return "validator"
    return "complexity_router"


def route_after_complexity_router(state: State) -> Literal["llm_planner", "pattern_fallback"]:
    """Send the request to the tier the router chose, or to the rule planner when it chose none."""
    return "llm_planner" if state.tier else "pattern_fallback"


def route_after_llm_planner(
    state: State,
) -> Literal["validator", "llm_planner", "pattern_fallback"]:
    """Validate a plan, or take the edge of the error type."""
    if state.error_type is None:
        if state.plan is None:
            raise ValueError("llm_planner returned neither a plan nor an error type")
        return "validator"
    route = LLM_ERROR_ROUTES.get(state.error_type, "pattern_fallback")
    if route == "llm_planner" and state.repairs >= MAX_REPAIRS:
        return "pattern_fallback"
    return route


def route_after_validator(
    state: State,
) -> Literal[
    "executor", "llm_planner", "pattern_fallback", "complexity_router", "history_recorder"
]:
    """Run a valid plan; repair, replace or give up on an invalid one, by who made it."""
    if not state.validation_errors:
        return "executor"
    if state.plan_source == "llm":
        return "llm_planner" if state.repairs < MAX_REPAIRS else "pattern_fallback"
    if state.plan_source == "cache":
        return "complexity_router"  # tools changed under the cached plan: plan afresh
    return "history_recorder"  # the rule planner's plan is its last word


def route_after_pattern_fallback(state: State) -> Literal["validator", "history_recorder"]:
    """Validate the rule planner's plan, or record the refusal."""
    return "validator" if state.plan is not None else "history_recorder"
