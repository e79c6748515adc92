"""Score the request's complexity from recorded features and pick the planner and model tier."""

from __future__ import annotations

import re
from typing import Any

from graph.models import COMPLEXITY_TIER
from graph.pattern_planner import plan_request
from graph.progress import emit
from graph.services import Services
from graph.state import Complexity, State

_CONNECTORS = re.compile(r"\b(?:and then|then|after that|afterwards|also|next|finally)\b|[;]")
_CONDITIONALS = re.compile(r"\b(?:if|unless|when|whenever|otherwise|else|only if|in case)\b")
_QUANTIFIERS = re.compile(r"\b(?:all|every|each|any|none|both|everything)\b")
_NUMBERS = re.compile(r"\d+(?:[.,]\d+)?")


def measure(request: str) -> dict[str, Any]:
    """Return the features the complexity score is computed from."""
    lowered = request.lower()
    pattern = plan_request(request)
    return {
        "words": len(request.split()),
        "connectors": len(_CONNECTORS.findall(lowered)),
        "conditionals": len(_CONDITIONALS.findall(lowered)),
        "quantifiers": len(_QUANTIFIERS.findall(lowered)),
        "numbers": len(_NUMBERS.findall(request)),
        "pattern_steps": len(pattern.plan.steps) if pattern.plan else 0,
        "pattern_confident": pattern.confident,
    }


def score(features: dict[str, Any]) -> Complexity:
    """Classify a request: conditionals, long chains or long text make it complex."""
    if (
        features["conditionals"]
        or features["quantifiers"]
        or features["connectors"] >= 2
        or features["words"] > 40
    ):
        return "complex"
    if features["connectors"] or features["words"] > 12 or features["numbers"] > 3:
        return "moderate"
    return "simple"


def complexity_router(state: State, *, services: Services) -> dict[str, Any]:
    """Record features, complexity, tier (None: the rule planner) and the reason for the choice.

    Simple and moderate requests go to `fast`, complex ones to `smart`; a tier whose breaker is
    open, or that the daily budget no longer allows, is skipped for the next one up (then down).
    With no tier left the rule planner takes over, and the run records why. The choice is also
    streamed as a `route_chosen` progress event.
    """
    update = _route(state, services)
    emit(
        "route_chosen",
        state.run_id,
        complexity=update["complexity"],
        planner="llm" if update["tier"] else "rules",
        tier=update["tier"],
        model=update.get("model"),
        reason=update["route_reason"],
    )
    return update


def _route(state: State, services: Services) -> dict[str, Any]:
    """Return the router's update (see `complexity_router`)."""
    features = measure(state.request)
    complexity = score(features)
    update: dict[str, Any] = {
        "features": features,
        "complexity": complexity,
        "path": ["complexity_router"],
    }
    if not services.models:
        reason = "no LLM configured (OPENAI_API_KEY unset): rule-based planner"
        return update | {"tier": None, "route_reason": reason}
    if services.context.pattern_first and complexity == "simple" and features["pattern_confident"]:
        reason = "simple request the rule-based planner fully understands"
        return update | {"tier": None, "route_reason": reason}
    preferred = COMPLEXITY_TIER[complexity]
    tier, skipped = services.choose_tier(preferred)
    if tier is None:
        error_type = (
            "circuit_open" if any("circuit open" in r for r in skipped) else "budget_exhausted"
        )
        reason = "no model can plan now (" + "; ".join(skipped) + "): rule-based planner"
        return update | {
            "tier": None,
            "route_reason": reason,
            "error_type": error_type,
            "fallback_reason": "; ".join(skipped),
        }
    reason = f"{complexity} request: {tier} tier ({services.tier_model_name(tier)})"
    if skipped:
        reason += " after skipping " + "; ".join(skipped)
    return update | {"tier": tier, "route_reason": reason, "model": services.tier_model_name(tier)}
