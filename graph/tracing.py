"""LangSmith tracing: name, tag and describe each run's trace once the run knows what it was."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.runnables.config import ensure_config
from langchain_core.tracers.langchain import LangChainTracer
from langsmith.run_helpers import get_current_run_tree
from langsmith.run_trees import RunTree

from graph.state import State

logger = logging.getLogger(__name__)

TRACE_PREFIX = "crane: "
"""What every Crane trace name starts with."""

KIND_OF_TOOL = {"calculator": "calculator", "todo_store": "todo"}
"""The short word a trace name uses for each tool; an unlisted tool is named as it is."""


def trace_name(state: State, response: dict[str, Any]) -> str:
    """Return the trace name of a run: the kinds of request its plan served, or why none.

    Args:
        state: The run's final state.
        response: The run's response (see `nodes.history_recorder.build_response`).

    Returns:
        `crane: calculator`, `crane: todo` or `crane: calculator+todo` for a run with a plan
        (failed or not: the tags say how it ended), `crane: invalid` for a rejected request and
        `crane: refused` for a request no planner could plan.
    """
    if state.plan is not None and state.plan.steps:
        kinds = {KIND_OF_TOOL.get(step.tool_name, step.tool_name) for step in state.plan.steps}
        return TRACE_PREFIX + "+".join(sorted(kinds))
    if response["error_type"] == "invalid_request":
        return TRACE_PREFIX + "invalid"
    return TRACE_PREFIX + "refused"


def trace_tags(state: State, response: dict[str, Any]) -> list[str]:
    """Return the tags of a run's trace, to filter runs by how they were planned and ended.

    Args:
        state: The run's final state.
        response: The run's response.

    Returns:
        `plan_source:<x>` and `complexity:<x>` when known, `error_type:<x>` when the run
        failed, `tier:<x>` when an LLM tier was called and `cache:<level>` on a cache hit.
    """
    tags = []
    if state.plan_source is not None:
        tags.append(f"plan_source:{state.plan_source}")
    if state.complexity is not None:
        tags.append(f"complexity:{state.complexity}")
    if response["status"] == "failed":
        tags.append(f"error_type:{response['error_type']}")
    # `tier` is also set when the router picked a tier that was then never called.
    if state.tier is not None and state.llm_attempts:
        tags.append(f"tier:{state.tier}")
    if state.cache_hit is not None:
        tags.append(f"cache:{state.cache_hit.get('level')}")
    return tags


def trace_metadata(state: State, response: dict[str, Any]) -> dict[str, Any]:
    """Return the metadata of a run's trace: Crane's ids and what the run spent.

    Args:
        state: The run's final state.
        response: The run's response.

    Returns:
        `run_id` (Crane's, as in history), `user_id`, `model` (of the last LLM attempt, or
        None), `tokens` and `cost_usd`.
    """
    # Rejected input may carry a user_id that is not text; metadata must stay small and JSON.
    user_id = state.user_id if isinstance(state.user_id, str) else repr(state.user_id)
    return {
        "run_id": response["run_id"],
        "user_id": user_id[:200],
        "model": state.model,
        "tokens": state.tokens,
        "cost_usd": state.cost_usd,
    }


def crane_run() -> RunTree | None:
    """Return the traced run of the graph the calling node belongs to, or None when untraced.

    LangSmith sets the current run tree to the node's own run; its parent, the graph's run, is
    kept by langchain-core's tracer (the node's run does not link to it).
    """
    node_run = get_current_run_tree()
    if node_run is None or node_run.parent_run_id is None:
        return None
    if node_run.parent_run is not None:
        return node_run.parent_run
    callbacks = ensure_config().get("callbacks")
    for handler in getattr(callbacks, "handlers", None) or []:
        if isinstance(handler, LangChainTracer):
            run = handler.run_map.get(str(node_run.parent_run_id))
            if run is not None:
                return run
    return None


def annotate_trace(state: State, response: dict[str, Any]) -> None:
    """Name, tag and describe the graph's traced run from inside its last node.

    The graph's run was posted under the graph's name when the run started; it is patched
    with its name, tags and metadata when it ends, after this node. Without tracing this is a
    no-op.

    Args:
        state: The run's final state.
        response: The run's response.
    """
    # A trace that cannot be annotated costs a log line, never the person's answer.
    try:
        run = crane_run()
        if run is None:
            return
        run.name = trace_name(state, response)
        # A new list, not add_tags' in-place extend: the old list may be shared with other runs.
        run.tags = [*(run.tags or []), *trace_tags(state, response)]
        run.add_metadata(trace_metadata(state, response))
    except Exception as exc:
        logger.warning("could not annotate the trace of run %s: %s", state.run_id, exc)
