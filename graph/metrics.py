"""What the LLM path has cost and how its models are doing, read from history by any process."""

from __future__ import annotations

from typing import Any

from graph.context import Context
from graph.history import SqliteHistory
from graph.services import level_of_budget, start_of_day


def llm_summary(context: Context) -> dict[str, Any]:
    """Return today's (UTC) LLM usage per model, the budget, and each breaker's last state.

    Breakers live in the process that runs the graph; what is shown is the last transition
    that process recorded. An `open` breaker whose `at + cooldown_s` is past lets its next
    request through as a trial.
    """
    history = SqliteHistory(context.home_path / "history.sqlite")
    since = start_of_day()
    usage = history.usage_by_model(since)
    spent = history.cost_since(since)
    return {
        "since": since,
        "usage_by_model": usage,
        "cost_usd": spent,
        "tokens": sum(int(u.get("tokens", 0)) for u in usage.values()),
        "budget": {
            "usd": context.budget_usd,
            "spent_usd": spent,
            "level": level_of_budget(spent, context.budget_usd),
        },
        "breakers": history.breaker_states(),
    }
