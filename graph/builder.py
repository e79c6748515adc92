"""Assemble Crane's seven-node graph: `build_graph()` for Python users, `build_builder()` for tests."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from graph.context import Context
from graph.models import TIERS, build_tier_models
from graph.routing import (
    route_after_cache_lookup,
    route_after_complexity_router,
    route_after_llm_planner,
    route_after_pattern_fallback,
    route_after_validator,
)
from graph.services import Services
from graph.state import InputState, OutputState, State
from nodes.cache_lookup import cache_lookup
from nodes.complexity_router import complexity_router
from nodes.executor import executor
from nodes.history_recorder import history_recorder
from nodes.llm_planner import llm_planner
from nodes.pattern_fallback import pattern_fallback
from nodes.validator import validator

NODES: tuple[Callable[..., dict[str, Any]], ...] = (
    cache_lookup,
    complexity_router,
    llm_planner,
    validator,
    pattern_fallback,
    executor,
    history_recorder,
)


def build_builder(services: Services) -> StateGraph[State, Context, InputState, OutputState]:
    """Return the uncompiled graph with every node bound to `services`."""
    builder = StateGraph(
        State, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    for node in NODES:
        # Bound with partial, so registered under the function's own name explicitly.
        builder.add_node(node.__name__, functools.partial(node, services=services))
    builder.add_edge(START, "cache_lookup")
    builder.add_conditional_edges("cache_lookup", route_after_cache_lookup)
    builder.add_conditional_edges("complexity_router", route_after_complexity_router)
    builder.add_conditional_edges("llm_planner", route_after_llm_planner)
    builder.add_conditional_edges("validator", route_after_validator)
    builder.add_conditional_edges("pattern_fallback", route_after_pattern_fallback)
    builder.add_edge("executor", "history_recorder")
    builder.add_edge("history_recorder", END)
    return builder


def build_graph(
    *,
    chat_model: BaseChatModel | None = None,
    models: Mapping[str, BaseChatModel | None] | None = None,
    checkpointer: BaseCheckpointSaver[Any] | None = None,
    store: BaseStore | None = None,
    name: str = "crane",
    **settings: Any,
) -> CompiledStateGraph[State, Context, InputState, OutputState]:
    """Return a compiled Crane graph; settings come from the environment unless overridden.

    Args:
        chat_model: one chat model for every tier (e.g. a local endpoint's, or a fake in tests).
        models: a chat model per tier (`fast`, `smart`, `reasoning`); wins over `chat_model`.
        checkpointer: persists each run's state by `thread_id` (omit under `langgraph dev`,
            which brings its own).
        store: a LangGraph store for the nodes (omit under `langgraph dev`).
        name: the compiled graph's name, shown in traces.
        **settings: any `Context` field, e.g. `home="/tmp/crane"`, `pattern_first=False`.

    Example:
        >>> app = build_graph(home="/tmp/crane-demo")
        >>> app.invoke({"prompt": "what is 8% of 50"})["response"]["answer"]
        4
    """
    context = Context.from_env(**settings)
    tier_models: dict[str, BaseChatModel | None] = dict.fromkeys(TIERS, chat_model)
    tier_models.update(models or {})
    services = Services.create(context, build_tier_models(context, tier_models))
    return build_builder(services).compile(checkpointer=checkpointer, store=store, name=name)
