"""Plan with a tier's chat model: one attempt per node run, its outcome typed in state for the edges.

The first run uses the tier `complexity_router` chose; after a failure the edge back here was
taken because `graph.routing.next_attempt` found a retry, repair or escalation, and this node
asks that same function which one, waits its backoff and makes it. The node has a sync body
for `invoke` and an async one for `ainvoke` (waits are `asyncio.sleep`, calls `ainvoke`), so
concurrent runs never block the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage

from graph.breaker import CircuitBreaker
from graph.errors import ModelUnavailableError
from graph.models import (
    classify_llm_error,
    describe_llm_error,
    failed_call_usage,
    parse_plan_reply,
    retry_after_seconds,
)
from graph.plan import MAX_STEPS, Plan
from graph.prompts import FEW_SHOT_EXAMPLES, PLANNER_SYSTEM_PROMPT, REPAIR_PROMPT
from graph.routing import MAX_TRANSIENT_RETRIES, TRANSIENT_ERRORS, Attempt, next_attempt
from graph.services import Services
from graph.state import LlmErrorType, State

logger = logging.getLogger(__name__)

BREAKER_FAILURES = frozenset({"rate_limit", "timeout", "connection", "server_error"})
"""Failures that say the endpoint+model is unhealthy, and count toward its breaker."""

BREAKER_OPENS_AT_ONCE = frozenset({"auth", "not_found"})
"""Failures no retry can fix: the breaker opens at once (a bad key, a model that does not exist)."""


def system_prompt(services: Services) -> str:
    """Return the planner's system prompt with the registry's tool specs and the examples."""
    specs = "\n".join(
        f"- {s['name']}: {s['description']}\n  input schema: {json.dumps(s['input_schema'])}"
        for s in services.tools.specs()
    )
    examples = "\n".join(
        f"Request: {request}\nPlan: {json.dumps(plan)}" for request, plan in FEW_SHOT_EXAMPLES
    )
    return PLANNER_SYSTEM_PROMPT.format(tool_specs=specs, max_steps=MAX_STEPS, examples=examples)


def repair_feedback(state: State) -> list[str]:
    """Return what was wrong with the last attempt's output; empty when it was not invalid."""
    if state.plan_source == "llm" and state.validation_errors:
        return state.validation_errors
    if state.error_type == "invalid_output" and state.llm_error:
        return [state.llm_error]
    return []


def planner_messages(state: State, services: Services, *, repair: bool) -> list[AnyMessage]:
    """Return the conversation for this attempt, with the last attempt's problems when repairing."""
    messages: list[AnyMessage] = [
        SystemMessage(system_prompt(services)),
        HumanMessage(state.request),
    ]
    problems = repair_feedback(state) if repair else []
    if problems:
        if state.plan is not None:
            messages.append(AIMessage(state.plan.model_dump_json()))
        messages.append(
            HumanMessage(REPAIR_PROMPT.format(errors="\n".join(f"- {p}" for p in problems)))
        )
    return messages


@dataclass
class _Call:
    """One prepared attempt: where it goes, how long to wait first, and the update so far."""

    tier: str
    wait_s: float
    messages: list[AnyMessage]
    breaker: CircuitBreaker | None
    """None when the tier has no model (a misconfigured caller); the attempt then fails."""
    model: str
    update: dict[str, Any]


def _prepare(state: State, services: Services) -> _Call:
    followup = (
        next_attempt(state, services.retry_settings)
        if state.error_type or (state.plan_source == "llm" and state.validation_errors)
        else None
    )
    if followup is None:
        followup = Attempt("retry", state.tier or "fast", 0.0, "")
        first = True
    else:
        first = False
    same_tier = not first and followup.tier == state.tier
    tier = followup.tier
    model = services.tier_model_name(tier) or tier
    update: dict[str, Any] = {
        "tier": tier,
        "model": model,
        "llm_attempts": state.llm_attempts + 1,
        "attempt": state.attempt + 1 if same_tier else 1,
        "repairs": (state.repairs if same_tier else 0) + int(followup.kind == "repair"),
        "rate_limit_retried": state.rate_limit_retried
        or (not first and state.error_type == "rate_limit"),
        "llm_wait_s": state.llm_wait_s + followup.wait_s,
        "llm_route": [*state.llm_route, followup.reason] if followup.reason else state.llm_route,
        "path": ["llm_planner"],
    }
    return _Call(
        tier=tier,
        wait_s=followup.wait_s,
        messages=planner_messages(state, services, repair=followup.kind == "repair"),
        breaker=services.breaker(tier) if tier in services.models else None,
        model=model,
        update=update,
    )


def _usage(
    state: State, services: Services, call: _Call, tokens_in: int, tokens_out: int
) -> dict[str, Any]:
    cost = services.prices.cost(call.model, tokens_in, tokens_out)
    usage = {m: dict(v) for m, v in state.usage.items()}
    entry = usage.setdefault(
        call.model,
        {"calls": 0, "input_tokens": 0, "output_tokens": 0, "tokens": 0, "cost_usd": 0.0},
    )
    entry["calls"] += 1
    entry["input_tokens"] += tokens_in
    entry["output_tokens"] += tokens_out
    entry["tokens"] += tokens_in + tokens_out
    entry["cost_usd"] += cost
    return {
        "usage": usage,
        "tokens": state.tokens + tokens_in + tokens_out,
        "cost_usd": state.cost_usd + cost,
    }


def _failed(
    state: State,
    services: Services,
    call: _Call,
    error_type: LlmErrorType,
    message: str,
    retry_after_s: float | None = None,
) -> dict[str, Any]:
    if error_type in TRANSIENT_ERRORS:
        # Exponential backoff with full jitter: concurrent runs that failed together spread out.
        attempt = call.update["attempt"]
        ceiling = min(
            services.context.backoff_cap_s,
            services.context.backoff_base_s * 2 ** (attempt - 1),
        )
        retry_after_s = (
            services.rng.uniform(0, ceiling) if attempt <= MAX_TRANSIENT_RETRIES else None
        )
    return call.update | {
        "plan": None,
        "plan_source": None,
        "error_type": error_type,
        "llm_error": message,
        "retry_after_s": retry_after_s,
        "next_tier": services.escalation_tier(call.tier),
        "llm_route": [*call.update["llm_route"], f"{call.tier} ({call.model}): {error_type}"],
    }


def _denied(state: State, services: Services, call: _Call) -> dict[str, Any] | None:
    """Return the failed attempt when the call may not be made, else None."""
    if call.breaker is None:
        return _failed(state, services, call, "other", str(ModelUnavailableError(call.tier)))
    if call.breaker.allow():
        return None
    snapshot = call.breaker.snapshot()
    return _failed(
        state,
        services,
        call,
        "circuit_open",
        describe_llm_error("circuit_open")
        + f" for {call.model}, retry in {snapshot['retry_in_s']:.0f} s",
    )


def _on_error(state: State, services: Services, call: _Call, exc: Exception) -> dict[str, Any]:
    error_type = classify_llm_error(exc)
    logger.info("LLM planner failed on %s (%s): %s", call.model, error_type, exc)
    assert call.breaker is not None  # no call is made without one
    if error_type in BREAKER_OPENS_AT_ONCE:
        call.breaker.record_failure(error_type, immediate=True)
    elif error_type in BREAKER_FAILURES:
        call.breaker.record_failure(error_type)
    else:
        call.breaker.record_success()  # the endpoint answered; the problem was this request
    update = _failed(
        state,
        services,
        call,
        error_type,
        describe_llm_error(error_type, exc),
        retry_after_s=retry_after_seconds(exc) if error_type == "rate_limit" else None,
    )
    tokens_in, tokens_out = failed_call_usage(exc)
    if tokens_in or tokens_out:
        update |= _usage(state, services, call, tokens_in, tokens_out)
    return update


def _on_reply(state: State, services: Services, call: _Call, reply: Any) -> dict[str, Any]:
    assert call.breaker is not None  # no call is made without one
    call.breaker.record_success()
    usage = getattr(reply, "usage_metadata", None) or {}
    update = call.update | _usage(
        state,
        services,
        call,
        int(usage.get("input_tokens", 0)),
        int(usage.get("output_tokens", 0)),
    )
    try:
        plan: Plan = parse_plan_reply(reply)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the model's invalid output
        failed = _failed(
            state, services, call, "invalid_output", describe_llm_error("invalid_output", exc)
        )
        return failed | {k: update[k] for k in ("usage", "tokens", "cost_usd")}
    if not plan.steps:
        reason = plan.final_goal.strip()[:200] or "no reason given"
        failed = _failed(
            state, services, call, "declined", f"{describe_llm_error('declined')}: {reason}"
        )
        return failed | {k: update[k] for k in ("usage", "tokens", "cost_usd")}
    return update | {
        "plan": plan,
        "plan_source": "llm",
        "error_type": None,
        "llm_error": None,
        "retry_after_s": None,
        "next_tier": None,
        "validation_errors": [],
        "llm_route": [*update["llm_route"], f"{call.tier} ({call.model}): plan"],
    }


def llm_planner(state: State, *, services: Services) -> dict[str, Any]:
    """Make the policy's next LLM attempt (sync body); never raises."""
    call = _prepare(state, services)
    if call.wait_s > 0:
        time.sleep(call.wait_s)
    denied = _denied(state, services, call)
    if denied is not None:
        return denied
    try:
        reply = services.planner(call.tier).invoke(call.messages)
    except Exception as exc:  # every failure is classified; the edges decide what happens next
        return _on_error(state, services, call, exc)
    return _on_reply(state, services, call, reply)


async def allm_planner(state: State, *, services: Services) -> dict[str, Any]:
    """Make the policy's next LLM attempt (async body: waits and calls never block the loop)."""
    call = _prepare(state, services)
    if call.wait_s > 0:
        await asyncio.sleep(call.wait_s)
    denied = _denied(state, services, call)
    if denied is not None:
        return denied
    try:
        planner = await services.aplanner(call.tier)
        reply = await planner.ainvoke(call.messages)
    except Exception as exc:  # every failure is classified; the edges decide what happens next
        return _on_error(state, services, call, exc)
    return _on_reply(state, services, call, reply)
