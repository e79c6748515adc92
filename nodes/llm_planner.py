"""Plan with the tier's chat model through structured output; failures become a typed error in state."""

from __future__ import annotations

import json
import logging
from typing import Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage

from graph.models import classify_llm_error, describe_llm_error
from graph.plan import MAX_STEPS, Plan
from graph.prompts import FEW_SHOT_EXAMPLES, PLANNER_SYSTEM_PROMPT, REPAIR_PROMPT
from graph.services import Services
from graph.state import State

logger = logging.getLogger(__name__)


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


def planner_messages(state: State, services: Services) -> list[AnyMessage]:
    """Return the conversation for this attempt, with the last attempt's problems when repairing."""
    messages: list[AnyMessage] = [
        SystemMessage(system_prompt(services)),
        HumanMessage(state.request),
    ]
    problems = repair_feedback(state)
    if problems:
        if state.plan is not None:
            messages.append(AIMessage(state.plan.model_dump_json()))
        messages.append(
            HumanMessage(REPAIR_PROMPT.format(errors="\n".join(f"- {p}" for p in problems)))
        )
    return messages


def repair_feedback(state: State) -> list[str]:
    """Return what was wrong with this run's last LLM attempt; empty on a first attempt."""
    if state.plan_source == "llm" and state.validation_errors:
        return state.validation_errors
    if state.error_type == "invalid_output" and state.llm_error:
        return [state.llm_error]
    return []


def llm_planner(state: State, *, services: Services) -> dict[str, Any]:
    """Ask the tier's model for a plan; never raises."""
    tier = state.tier or "fast"
    repairing = bool(repair_feedback(state))
    update: dict[str, Any] = {
        "llm_attempts": state.llm_attempts + 1,
        "repairs": state.repairs + int(repairing),
        "model": services.tier_model_name(tier),
        "path": ["llm_planner"],
    }
    try:
        result = services.planner(tier).invoke(planner_messages(state, services))
    except Exception as exc:  # every failure is classified; the edges decide what happens next
        error_type = classify_llm_error(exc)
        logger.info("LLM planner failed (%s): %s", error_type, exc)
        return update | {
            "plan": None,
            "plan_source": None,
            "error_type": error_type,
            "llm_error": describe_llm_error(error_type, exc),
        }
    raw, plan = result.get("raw"), result.get("parsed")
    usage = getattr(raw, "usage_metadata", None) or {}
    update["tokens"] = state.tokens + int(usage.get("total_tokens", 0))
    if not isinstance(plan, Plan):
        error = result.get("parsing_error") or ValueError("no plan in the model's reply")
        return update | {
            "plan": None,
            "plan_source": None,
            "error_type": "invalid_output",
            "llm_error": describe_llm_error("invalid_output", error),
        }
    return update | {
        "plan": plan,
        "plan_source": "llm",
        "error_type": None,
        "llm_error": None,
    }
