"""Assemble Crane's seven-node graph: `build_graph()` for Python users, `build_builder()` for tests."""

from __future__ import annotations

import functools
import time
import typing
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables.config import ensure_config, run_in_executor

# LangGraph's own node runnable (langgraph-prebuilt's ToolNode builds on it too): one node with a
# sync body for `invoke` and an async body for `ainvoke`, traced once under the node's name.
# langchain-core's RunnableLambda(func, afunc) does the same but adds a second, nested run.
from langgraph._internal._runnable import RunnableCallable
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore

from graph.breaker import BreakerBoard
from graph.context import Context
from graph.models import TIERS, build_tier_models, endpoint_model_factories
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
from nodes.llm_planner import allm_planner, llm_planner
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


ASYNC_NODES: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {"llm_planner": allm_planner}
"""Nodes with their own async body; the others run their sync body in a worker thread."""


def node_runnable(node: Callable[..., dict[str, Any]], services: Services) -> RunnableCallable:
    """Return `node` bound to `services`, runnable by `invoke` and, without blocking, by `ainvoke`.

    Either body adds `{"node_ms": {name: elapsed_ms}}` to the node's update (see
    `graph.state.add_node_ms`), so every node is timed the same way whichever way it runs.
    """
    name = node.__name__
    bound = functools.partial(node, services=services)

    def sync(state: State) -> dict[str, Any]:
        start = time.perf_counter()
        update = bound(state)
        return update | {"node_ms": {name: _elapsed_ms(start)}}

    native = ASYNC_NODES.get(name)
    if native is not None:
        abound = functools.partial(native, services=services)

        async def timed(state: State) -> dict[str, Any]:
            start = time.perf_counter()
            update = await abound(state)
            return update | {"node_ms": {name: _elapsed_ms(start)}}

        return RunnableCallable(sync, timed, name=name, trace=False)

    async def in_thread(state: State) -> dict[str, Any]:
        # SQLite and CPU work off the event loop; run_in_executor carries the run's context
        # (the config LangGraph set for this node: callbacks, stream writer) into the thread.
        result: dict[str, Any] = await run_in_executor(ensure_config(), sync, state)
        return result

    return RunnableCallable(sync, in_thread, name=name, trace=False)


def _elapsed_ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def _targets(route: Callable[..., Any]) -> list[str]:
    """Return the node names a router may return, read from its `Literal` return annotation."""
    return list(typing.get_args(typing.get_type_hints(route)["return"]))


def build_builder(services: Services) -> StateGraph[State, Context, InputState, OutputState]:
    """Return the uncompiled graph with every node and policy-reading router bound to `services`."""
    builder = StateGraph(
        State, context_schema=Context, input_schema=InputState, output_schema=OutputState
    )
    for node in NODES:
        builder.add_node(node.__name__, node_runnable(node, services))
    settings = services.retry_settings
    builder.add_edge(START, "cache_lookup")
    builder.add_conditional_edges("cache_lookup", route_after_cache_lookup)
    builder.add_conditional_edges("complexity_router", route_after_complexity_router)
    # These two read the configurable retry limits; bound with partial, they need their
    # targets spelled out for the drawing.
    builder.add_conditional_edges(
        "llm_planner",
        functools.partial(route_after_llm_planner, settings=settings),
        _targets(route_after_llm_planner),
    )
    builder.add_conditional_edges(
        "validator",
        functools.partial(route_after_validator, settings=settings),
        _targets(route_after_validator),
    )
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
    breakers: BreakerBoard | None = None,
    embeddings: Embeddings | str | None = None,
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
        breakers: circuit breakers to share with other runtimes of this process; by default
            each runtime has its own board, shared by all of its runs.
        embeddings: the embedder of the semantic cache and the dynamic examples: an
            `Embeddings`, or a `CRANE_EMBEDDINGS` value such as `"hash"`.
        name: the compiled graph's name, shown in traces.
        **settings: any `Context` field, e.g. `home="/tmp/crane"`, `pattern_first=False`.

    Example:
        >>> app = build_graph(home="/tmp/crane-demo")
        >>> app.invoke({"prompt": "what is 8% of 50"})["response"]["answer"]
        4
    """
    if isinstance(embeddings, str):  # the `Context` field, a CRANE_EMBEDDINGS value
        settings["embeddings"], embeddings = embeddings, None
    context = Context.from_env(**settings)
    tier_models: dict[str, BaseChatModel | None] = dict.fromkeys(TIERS, chat_model)
    tier_models.update(models or {})
    factories = endpoint_model_factories(context, tier_models)
    services = Services.create(
        context,
        build_tier_models(context, tier_models, factories),
        breakers,
        factories,
        embeddings,
    )
    return build_builder(services).compile(checkpointer=checkpointer, store=store, name=name)
