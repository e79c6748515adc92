"""Last node: assemble the response, record the run, and keep or evict its plan in the cache."""

from __future__ import annotations

import logging
import time
from typing import Any

from graph.db import STORAGE_ERRORS
from graph.services import Services
from graph.state import State
from graph.tracing import annotate_trace
from nodes.cache_lookup import MAX_PROMPT_CHARS, MAX_USER_ID_CHARS, clean_text

logger = logging.getLogger(__name__)


def build_response(state: State, latency_ms: float) -> dict[str, Any]:
    """Return the run's response dict (the public contract)."""
    completed = state.error is None and state.plan is not None and bool(state.steps)
    completed = completed and all(step["ok"] for step in state.steps)
    error = state.error
    if error is None and state.validation_errors:
        error = "The plan could not be used: " + "; ".join(state.validation_errors)
    error_type = state.error_type or ("validation_error" if state.validation_errors else "other")
    return {
        "run_id": state.run_id,
        "status": "completed" if completed else "failed",
        "answer": state.answer if completed else None,
        "plan_source": state.plan_source,
        "plan": state.plan.model_dump() if state.plan is not None else None,
        "steps": state.steps,
        "error": None if completed else (error or "The run failed for an unknown reason."),
        "error_type": None if completed else error_type,
        "model": state.model if state.plan_source == "llm" else None,
        "complexity": state.complexity,
        "tokens": state.tokens,
        "cost_usd": round(state.cost_usd, 10),  # float sums leave noise like 0.004604000000000001
        "latency_ms": round(latency_ms, 3),
        "fallback_reason": state.fallback_reason,
        "cache_hit": state.cache_hit,
    }


def _recorded(value: Any, limit: int) -> str:
    """Return what history keeps of an input: storable text, bounded even for rejected input."""
    text = value if isinstance(value, str) else repr(value)
    return clean_text(text[: limit + 1])


def history_row(state: State, response: dict[str, Any]) -> dict[str, Any]:
    """Return the history record of a run."""
    return {
        "run_id": state.run_id,
        "user_id": _recorded(state.user_id, MAX_USER_ID_CHARS),
        "created_at": state.started_at,
        "prompt": _recorded(state.prompt, MAX_PROMPT_CHARS),
        "status": response["status"],
        "plan_source": state.plan_source,
        "plan": response["plan"],
        "steps": state.steps,
        "answer": response["answer"],
        "error": response["error"],
        # kept for completed fallback runs too: metrics count why the LLM path failed; a
        # failed run without one (a rejected rule plan) gets the response's derived type
        "error_type": state.error_type or response["error_type"],
        "complexity": state.complexity,
        "tier": state.tier,
        "model": state.model,
        "tokens": state.tokens,
        "cost_usd": state.cost_usd,
        "latency_ms": response["latency_ms"],
        "llm_attempts": state.llm_attempts,
        "path": [*state.path, "history_recorder"],
        "route_reason": state.route_reason,
        "fallback_reason": state.fallback_reason,
        "llm_route": state.llm_route,
        "llm_wait_s": state.llm_wait_s,
        "usage": state.usage,
        "cache_hit": state.cache_hit,
        # this node's own time is not known yet: it is in state after the run, not here
        "node_ms": state.node_ms,
        # the runs whose plans the LLM was shown (gathered on a miss, used only if it planned)
        "examples": [e["run_id"] for e in state.examples] if state.llm_attempts else [],
    }


def history_recorder(state: State, *, services: Services) -> dict[str, Any]:
    """Write the response and history row; cache a plan that validated and executed."""
    response = build_response(state, (time.time() - state.started_at) * 1000)
    # A broken store costs a log line, never the person's answer.
    try:
        services.history.record(history_row(state, response))
        recorded = True
    except STORAGE_ERRORS as exc:
        logger.error("could not record run %s in history: %s", state.run_id, exc)
        recorded = False
    services.spend.settle(state.cost_usd, recorded=recorded)
    try:
        _update_cache(state, services, completed=response["status"] == "completed")
    except (
        Exception
    ) as exc:  # the run is recorded: a cache that cannot learn from it costs nothing more
        logger.error("could not update the plan cache for run %s: %s", state.run_id, exc)
    # The last node: what the run was is known now, before its trace is closed.
    annotate_trace(state, response)
    return {"response": response, "path": ["history_recorder"]}


def _update_cache(state: State, services: Services, *, completed: bool) -> None:
    if state.plan is None or not state.request:
        return
    context = services.context
    # A fallback plan is a degraded stand-in for the LLM's: once the LLM is back, planning from
    # scratch would not produce it, so it is neither served from the cache nor an example.
    if completed and state.plan_source in ("llm", "pattern"):
        key = (state.user_id, services.signature, state.request, state.plan, state.run_id)
        if context.cache_enabled:
            services.cache.store_plan(*key)
        if context.examples_enabled:
            services.examples.add(*key)
    elif not completed and state.plan_source == "cache" and state.cache_entry_id is not None:
        services.cache.evict(state.cache_entry_id)
        # The run the plan came from taught a plan that fails: it must not teach the LLM either.
        if state.cache_hit is not None:
            services.examples.forget([state.cache_hit["run_id"]])
