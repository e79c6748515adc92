"""Check a plan against the schema and the tool registry before anything runs."""

from __future__ import annotations

import logging
from typing import Any

from graph.db import STORAGE_ERRORS
from graph.errors import UnknownToolError
from graph.plan import MAX_STEPS, Plan, references
from graph.services import Services
from graph.state import State
from tools.registry import ToolRegistry

logger = logging.getLogger(__name__)


def plan_errors(plan: Plan | None, tools: ToolRegistry) -> list[str]:
    """Return one sentence per problem of `plan`; empty when it may run."""
    if plan is None:
        return ["there is no plan"]
    if not 1 <= len(plan.steps) <= MAX_STEPS:
        return [f"a plan needs 1 to {MAX_STEPS} steps, this one has {len(plan.steps)}"]
    errors: list[str] = []
    for index, step in enumerate(plan.steps, start=1):
        where = f"step {index}"
        if step.step_number != index:
            errors.append(
                f"{where} is numbered {step.step_number}; steps must be numbered 1, 2, 3, ..."
            )
        try:
            problems = tools.check_input(step.tool_name, step.tool_input)
        except UnknownToolError as exc:
            problems = [str(exc)]
        errors.extend(f"{where}: {p}" for p in problems)
        for ref, _field in references(step.tool_input):
            if not 1 <= ref < index:
                errors.append(f"{where} refers to step {ref}, which does not run before it")
    return errors


def validator(state: State, *, services: Services) -> dict[str, Any]:
    """Write the plan's problems to `validation_errors`; a stale cached plan is also evicted."""
    errors = plan_errors(state.plan, services.tools)
    update: dict[str, Any] = {"validation_errors": errors, "path": ["validator"]}
    if errors and state.plan_source == "llm" and state.tier is not None:
        # After its repair, a rejected plan escalates: the policy needs the tier it would use.
        update["next_tier"] = services.escalation_tier(state.tier)
    if errors and state.plan_source == "cache" and state.cache_entry_id is not None:
        # The request is planned afresh: the response must not claim a cache hit, and the run
        # that taught this plan must not teach it to the LLM either.
        update |= {"cache_hit": None, "cache_entry_id": None}
        try:
            services.cache.evict(state.cache_entry_id)
            if state.cache_hit is not None:
                services.examples.forget([state.cache_hit["run_id"]])
        except STORAGE_ERRORS as exc:
            logger.warning("could not evict a stale cached plan: %s", exc)
    return update
