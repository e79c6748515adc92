"""The long-lived parts of one runtime: stores, tool registry and chat models, built once per graph."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from graph import pattern_planner, prompts
from graph.cache import PlanCache, SqlitePlanCache
from graph.context import Context
from graph.errors import ModelUnavailableError
from graph.history import HistoryStore, SqliteHistory
from graph.models import model_name, structured_planner
from tools.registry import ToolRegistry, build_registry
from tools.todo_store import TodoStore


def planner_signature(tools: ToolRegistry) -> str:
    """Return a hash of everything a plan is made from: tool specs, prompts and the rules' code.

    Hashing the content rather than trusting hand-bumped version numbers means an edited tool,
    prompt or rule can never be served a plan made under the old one.
    """
    digest = hashlib.sha256(tools.signature().encode())
    digest.update(Path(prompts.__file__).read_bytes())
    digest.update(Path(pattern_planner.__file__).read_bytes())
    return digest.hexdigest()[:16]


@dataclass
class Services:
    """What the nodes share across runs of one compiled graph.

    Nodes receive it bound as a keyword argument rather than through `Runtime.context`, because
    LangGraph leaves the context `None` unless each caller passes one, and these objects (SQLite
    stores, chat model clients) are neither per-run nor serializable.
    """

    context: Context
    tools: ToolRegistry
    todos: TodoStore
    history: HistoryStore
    cache: PlanCache
    models: dict[str, BaseChatModel] = field(default_factory=dict)
    """Chat model per tier; empty when no LLM is configured (offline)."""

    planners: dict[str, Runnable[Any, dict[str, Any]]] = field(default_factory=dict, repr=False)
    """Each tier's model bound to the Plan schema, built once."""

    signature: str = field(init=False)
    """What a cached plan must have been made under: tool specs, prompt and rule versions."""

    def __post_init__(self) -> None:
        """Bind every tier's model to the plan schema and compute the signature, once."""
        self.planners = {tier: structured_planner(m) for tier, m in self.models.items()}
        self.signature = planner_signature(self.tools)

    def planner(self, tier: str) -> Runnable[Any, dict[str, Any]]:
        """Return the structured-output planner of `tier`.

        Raises:
            ModelUnavailableError: the tier has no chat model.
        """
        try:
            return self.planners[tier]
        except KeyError:
            raise ModelUnavailableError(tier) from None

    def tier_model_name(self, tier: str) -> str | None:
        """Return the name of the model serving `tier`, if any."""
        model = self.models.get(tier)
        return model_name(model) if model is not None else None

    @classmethod
    def create(cls, context: Context, models: dict[str, BaseChatModel]) -> Services:
        """Open the stores under the context's data directory."""
        home = context.home_path
        todos = TodoStore(home / "todos.sqlite")
        return cls(
            context=context,
            tools=build_registry(todos),
            todos=todos,
            history=SqliteHistory(home / "history.sqlite"),
            cache=SqlitePlanCache(home / "cache.sqlite"),
            models=models,
        )
