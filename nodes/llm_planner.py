"""Plan with a tier's chat model: one attempt per node run, its outcome typed in state for the edges.

The first run uses the tier `complexity_router` chose; after a failure the edge back here was
taken because `graph.routing.next_attempt` found a retry, repair or escalation, and this node
asks that same function which one, waits its backoff and makes it. The node has a sync body
for `invoke` and an async one for `ainvoke` (waits are `asyncio.sleep`, calls `ainvoke`), so
concurrent runs never block the event loop.

Each call is bounded as a whole by `CRANE_LLM_TIMEOUT_S`: the HTTP client's timeout applies per
read, so an endpoint trickling its reply a few bytes at a time would otherwise hold a run for
as long as it likes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

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
from graph.plan import MAX_STEPS
from graph.progress import emit
from graph.prompts import (
    DYNAMIC_EXAMPLES_HEADER,
    FEW_SHOT_EXAMPLES,
    FEW_SHOT_SECTION,
    PLANNER_SYSTEM_PROMPT,
    REPAIR_PROMPT,
)
from graph.routing import MAX_TRANSIENT_RETRIES, TRANSIENT_ERRORS, Attempt, next_attempt
from graph.services import Services
from graph.state import LlmErrorType, State

logger = logging.getLogger(__name__)

T = TypeVar("T")

BREAKER_FAILURES = frozenset({"rate_limit", "timeout", "connection", "server_error"})
"""Failures that say the endpoint+model is unhealthy, and count toward its breaker."""

BREAKER_OPENS_AT_ONCE = frozenset({"auth", "not_found"})
"""Failures no retry can fix: the breaker opens at once (a bad key, a model that does not exist)."""


def examples_text(pairs: Iterable[tuple[str, Any]]) -> str:
    """Return request -> plan examples as the planner reads them, hand-written or from history."""
    return "\n".join(f"Request: {request}\nPlan: {json.dumps(plan)}" for request, plan in pairs)


def system_prompt(services: Services) -> str:
    """Return the planner's system prompt: tool specs, rules and (unless turned off) examples."""
    specs = "\n".join(
        f"- {s['name']}: {s['description']}\n  input schema: {json.dumps(s['input_schema'])}"
        for s in services.tools.specs()
    )
    shown = ""
    if services.context.few_shot:
        shown = FEW_SHOT_SECTION.format(examples=examples_text(FEW_SHOT_EXAMPLES))
    return PLANNER_SYSTEM_PROMPT.format(tool_specs=specs, max_steps=MAX_STEPS, examples=shown)


def repair_feedback(state: State) -> list[str]:
    """Return the repair conversation for the last attempt's output: its plan, then problems.

    Empty when the last attempt's output was not invalid. The first item is the rejected
    plan's JSON, or "" when the output was no plan at all.
    """
    if state.plan_source == "llm" and state.validation_errors and state.plan is not None:
        return [state.plan.model_dump_json(), *state.validation_errors]
    if state.error_type == "invalid_output" and state.llm_error:
        return ["", state.llm_error]
    return []


def planner_messages(state: State, services: Services, feedback: list[str]) -> list[AnyMessage]:
    """Return the conversation for an attempt; `feedback` (see `repair_feedback`) asks for a repair."""
    messages: list[AnyMessage] = [SystemMessage(system_prompt(services))]
    if state.examples:
        # The person's own past requests go in a message of theirs, not in the system prompt:
        # a request is the person's words, and must not gain the system's authority later.
        pairs = [(e["request"], e["plan"]) for e in state.examples]
        messages.append(HumanMessage(f"{DYNAMIC_EXAMPLES_HEADER}\n{examples_text(pairs)}"))
    messages.append(HumanMessage(state.request))
    if feedback:
        rejected, *problems = feedback
        if rejected:
            messages.append(AIMessage(rejected))
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
    ticket: int | None = None
    """The breaker's permit for this call, so that only its own report decides a trial."""


def _is_followup(state: State) -> bool:
    return state.error_type is not None or (
        state.plan_source == "llm" and bool(state.validation_errors)
    )


def _prepare(state: State, services: Services) -> _Call:
    followup = next_attempt(state, services.retry_settings) if _is_followup(state) else None
    # A first attempt behaves like arriving on a new tier: fresh counters, no feedback.
    attempt = followup or Attempt("escalate", state.tier or "fast", 0.0, "")
    same_tier = followup is not None and attempt.tier == state.tier
    after_transient = followup is not None and state.error_type in TRANSIENT_ERRORS
    if attempt.kind == "repair":
        feedback = repair_feedback(state)
    else:  # a retry resends the repair it retries; a new tier starts afresh
        feedback = state.feedback if same_tier else []
    model = services.tier_model_name(attempt.tier) or attempt.tier
    update: dict[str, Any] = {
        "tier": attempt.tier,
        "model": model,
        "llm_attempts": state.llm_attempts + 1,
        "attempt": state.attempt + 1 if same_tier else 1,
        "repairs": (state.repairs if same_tier else 0) + int(attempt.kind == "repair"),
        "retries": (state.retries if same_tier else 0) + int(after_transient and same_tier),
        "feedback": feedback,
        "rate_limit_retried": state.rate_limit_retried
        or (followup is not None and state.error_type == "rate_limit"),
        "llm_wait_s": state.llm_wait_s + attempt.wait_s,
        "llm_route": [*state.llm_route, attempt.reason] if attempt.reason else state.llm_route,
        "path": ["llm_planner"],
    }
    return _Call(
        tier=attempt.tier,
        wait_s=attempt.wait_s,
        messages=planner_messages(state, services, feedback),
        breaker=services.breaker(attempt.tier) if attempt.tier in services.models else None,
        model=model,
        update=update,
    )


def _usage(
    state: State, services: Services, call: _Call, tokens_in: int, tokens_out: int
) -> dict[str, Any]:
    """Return the run's usage with this call added (a failed call counts, at its tokens)."""
    cost = services.prices.cost(call.model, tokens_in, tokens_out)
    services.spend.add(cost)
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
    services: Services,
    call: _Call,
    error_type: LlmErrorType,
    message: str,
    retry_after_s: float | None = None,
) -> dict[str, Any]:
    if error_type in TRANSIENT_ERRORS:
        retries = call.update["retries"]
        # Exponential backoff with full jitter: concurrent runs that failed together spread out.
        ceiling = min(services.context.backoff_cap_s, services.context.backoff_base_s * 2**retries)
        retry_after_s = (
            services.rng.uniform(0, ceiling) if retries < MAX_TRANSIENT_RETRIES else None
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


def _refused(services: Services, call: _Call) -> dict[str, Any] | None:
    """Return the failed attempt when the call may not be made, else None (and take a permit)."""
    if call.breaker is None:
        return _failed(services, call, "other", str(ModelUnavailableError(call.tier)))
    budget = services.budget_problem(call.tier)
    if budget is not None:
        return _failed(
            services,
            call,
            "budget_exhausted",
            f"{describe_llm_error('budget_exhausted')}: {budget}",
        )
    call.ticket = call.breaker.permit()
    if call.ticket is not None:
        return None
    snapshot = call.breaker.snapshot()
    message = describe_llm_error("circuit_open")
    return _failed(
        services,
        call,
        "circuit_open",
        f"{message} for {call.model}, retry in {snapshot['retry_in_s']:.0f} s",
    )


def _on_error(state: State, services: Services, call: _Call, exc: Exception) -> dict[str, Any]:
    error_type = classify_llm_error(exc)
    logger.info("LLM planner failed on %s (%s): %s", call.model, error_type, exc)
    assert call.breaker is not None  # no call is made without one
    if error_type in BREAKER_OPENS_AT_ONCE:
        call.breaker.record_failure(error_type, immediate=True, ticket=call.ticket)
    elif error_type in BREAKER_FAILURES:
        call.breaker.record_failure(error_type, ticket=call.ticket)
    else:
        call.breaker.record_success(ticket=call.ticket)  # the endpoint answered
    update = _failed(
        services,
        call,
        error_type,
        describe_llm_error(error_type, exc),
        retry_after_s=retry_after_seconds(exc) if error_type == "rate_limit" else None,
    )
    return update | _usage(state, services, call, *failed_call_usage(exc))


def _on_reply(state: State, services: Services, call: _Call, reply: Any) -> dict[str, Any]:
    assert call.breaker is not None  # no call is made without one
    call.breaker.record_success(ticket=call.ticket)
    usage = getattr(reply, "usage_metadata", None) or {}
    spent = _usage(
        state, services, call, int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    )
    try:
        plan = parse_plan_reply(reply)
    except Exception as exc:  # any parse failure is the model's invalid output
        error = describe_llm_error("invalid_output", exc)
        return _failed(services, call, "invalid_output", error) | spent
    if not plan.steps:
        reason = plan.final_goal.strip()[:200] or "no reason given"
        error = f"{describe_llm_error('declined')}: {reason}"
        return _failed(services, call, "declined", error) | spent
    return (
        call.update
        | spent
        | {
            "plan": plan,
            "plan_source": "llm",
            "error_type": None,
            "llm_error": None,
            "retry_after_s": None,
            "next_tier": None,  # the validator looks one up if it rejects the plan
            "validation_errors": [],
            "llm_route": [*call.update["llm_route"], f"{call.tier} ({call.model}): plan"],
        }
    )


def _within(timeout_s: float, call: Callable[[], T]) -> T:
    """Return `call()`, or raise TimeoutError once `timeout_s` has passed.

    The call runs in a daemon thread that is abandoned on timeout (a synchronous HTTP read
    cannot be interrupted); it ends at the client's next read timeout or with the reply.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    context = contextvars.copy_context()  # the run's tracing callbacks follow the call

    def target() -> None:
        try:
            future.set_result(context.run(call))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name="crane-llm-call", daemon=True).start()
    return future.result(timeout=timeout_s)


def _announce(state: State, call: _Call) -> None:
    """Stream the model this attempt asks (`llm_attempt_started`)."""
    emit("llm_attempt_started", state.run_id, **_attempt_fields(call))


def _reported(state: State, call: _Call, update: dict[str, Any]) -> dict[str, Any]:
    """Stream the attempt's outcome (`llm_attempt_finished`) and return its `update`."""
    outcome = "plan" if update.get("plan_source") == "llm" else update.get("error_type")
    emit(
        "llm_attempt_finished",
        state.run_id,
        **_attempt_fields(call),
        outcome=outcome,
        error=update.get("llm_error"),
    )
    return update


def _attempt_fields(call: _Call) -> dict[str, Any]:
    return {
        "tier": call.tier,
        "model": call.model,
        "attempt": call.update["attempt"],
        "llm_call": call.update["llm_attempts"],
    }


def llm_planner(state: State, *, services: Services) -> dict[str, Any]:
    """Make the policy's next LLM attempt (sync body); never raises."""
    call = _prepare(state, services)
    if call.wait_s > 0:
        time.sleep(call.wait_s)
    if services.rate_limiter is not None:
        services.rate_limiter.acquire(blocking=True)
    _announce(state, call)
    refused = _refused(services, call)
    if refused is not None:
        return _reported(state, call, refused)
    planner = services.planner(call.tier)
    try:
        reply = _within(services.context.llm_timeout_s, lambda: planner.invoke(call.messages))
    except Exception as exc:  # every failure is classified; the edges decide what happens next
        return _reported(state, call, _on_error(state, services, call, exc))
    return _reported(state, call, _on_reply(state, services, call, reply))


async def allm_planner(state: State, *, services: Services) -> dict[str, Any]:
    """Make the policy's next LLM attempt (async body: waits and calls never block the loop)."""
    call = _prepare(state, services)
    if call.wait_s > 0:
        await asyncio.sleep(call.wait_s)
    if services.rate_limiter is not None:
        await services.rate_limiter.aacquire(blocking=True)
    _announce(state, call)
    refused = _refused(services, call)
    if refused is not None:
        return _reported(state, call, refused)
    try:
        planner = await services.aplanner(call.tier)
        async with asyncio.timeout(services.context.llm_timeout_s):
            reply = await planner.ainvoke(call.messages)
    except Exception as exc:  # every failure is classified; the edges decide what happens next
        return _reported(state, call, _on_error(state, services, call, exc))
    return _reported(state, call, _on_reply(state, services, call, reply))
