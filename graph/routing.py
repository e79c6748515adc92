"""Pure routing functions: each reads what the node before it recorded and names the next node.

The LLM failure policy lives here as one pure function, `next_attempt`, which both the edges
after `llm_planner` and `validator` and the next `llm_planner` run call on the same state, so
the edge taken and the attempt made can never disagree:

| failure | next attempt |
|---|---|
| rate limit (429) | once per run, after `Retry-After` if it is at most `retry_after_max_s`; else give up |
| timeout, connection error, 5xx | up to 2 retries on the tier after a jittered backoff, then the next tier up |
| invalid output, or a plan the validator rejects | one repair on the tier with the errors, then the next tier up |
| unknown model (404), bad request (400), context length, breaker open | the next tier up |
| auth (401/403), a declined request, budget spent, anything else | give up |

Giving up means `pattern_fallback`. Every wait counts against `retry_deadline_s` per run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graph.state import State

MAX_TRANSIENT_RETRIES = 2
"""Retries on one tier after timeouts, connection errors and 5xx, before escalating."""

MAX_REPAIRS = 1
"""Times an invalid plan is sent back to the same tier with its errors, before escalating."""

MAX_LLM_CALLS = 8
"""LLM calls one run may make over all tiers, whatever the mix of failures."""

TRANSIENT_ERRORS = frozenset({"timeout", "connection", "server_error"})
"""Failures worth retrying on the same model after a backoff."""

ESCALATING_ERRORS = frozenset({"not_found", "bad_request", "context_length", "circuit_open"})
"""Failures where the same model cannot help but another tier's model may."""

AttemptKind = Literal["retry", "repair", "escalate"]


@dataclass(frozen=True)
class RetrySettings:
    """The configurable limits of the LLM failure policy (from `Context`)."""

    retry_after_max_s: float = 2.0
    """Longest `Retry-After` honoured; a longer one gives up at once."""

    retry_deadline_s: float = 8.0
    """Total waiting one run may do before LLM retries."""


@dataclass(frozen=True)
class Attempt:
    """The LLM attempt that follows a failure."""

    kind: AttemptKind
    tier: str
    wait_s: float
    reason: str


def failure_type(state: State) -> str | None:
    """Return the LLM path's failure type in `state`; a plan the validator rejected is one."""
    if state.error_type is not None:
        return state.error_type
    if state.plan_source == "llm" and state.validation_errors:
        return "invalid_plan"
    return None


def next_attempt(state: State, settings: RetrySettings) -> Attempt | None:
    """Return the attempt the policy makes after the last LLM failure, or None to give up."""
    error = failure_type(state)
    if error is None or state.tier is None or state.llm_attempts >= MAX_LLM_CALLS:
        return None
    remaining = settings.retry_deadline_s - state.llm_wait_s
    escalate = (
        Attempt("escalate", state.next_tier, 0.0, f"{error} on {state.tier}: escalating")
        if state.next_tier
        else None
    )
    wait = state.retry_after_s
    if error == "rate_limit":
        if state.rate_limit_retried or wait is None:
            return None
        if wait > settings.retry_after_max_s or wait > remaining:
            return None
        return Attempt("retry", state.tier, wait, f"rate limited: retrying after {wait:.2f} s")
    if error in TRANSIENT_ERRORS:
        if state.retries < MAX_TRANSIENT_RETRIES and wait is not None and wait <= remaining:
            return Attempt("retry", state.tier, wait, f"{error}: retrying after {wait:.2f} s")
        return escalate
    if error in ("invalid_output", "invalid_plan"):
        if state.repairs < MAX_REPAIRS:
            return Attempt("repair", state.tier, 0.0, f"{error}: repairing with the errors")
        return escalate
    if error in ESCALATING_ERRORS:
        return escalate
    return None


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
    state: State, settings: RetrySettings = RetrySettings()
) -> Literal["validator", "llm_planner", "pattern_fallback"]:
    """Validate a plan, or take the policy's next attempt, or give up to the rule planner."""
    if state.error_type is None:
        if state.plan is None:
            raise ValueError("llm_planner returned neither a plan nor an error type")
        return "validator"
    return "llm_planner" if next_attempt(state, settings) else "pattern_fallback"


def route_after_validator(
    state: State, settings: RetrySettings = RetrySettings()
) -> Literal[
    "executor", "llm_planner", "pattern_fallback", "complexity_router", "history_recorder"
]:
    """Run a valid plan; repair, replace or give up on an invalid one, by who made it."""
    if not state.validation_errors:
        return "executor"
    if state.plan_source == "llm":
        return "llm_planner" if next_attempt(state, settings) else "pattern_fallback"
    if state.plan_source == "cache":
        return "complexity_router"  # tools changed under the cached plan: plan afresh
    return "history_recorder"  # the rule planner's plan is its last word


def route_after_pattern_fallback(state: State) -> Literal["validator", "history_recorder"]:
    """Validate the rule planner's plan, or record the refusal."""
    return "validator" if state.plan is not None else "history_recorder"
