"""Progress events: `emit` outside streaming runs, and the live view people see in a terminal."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from langchain_core.runnables import RunnableLambda
from langgraph.graph import START, StateGraph
from rich.console import Console
from typing_extensions import TypedDict

from graph.progress import EVENTS, ProgressView, emit, run_with_progress


class _State(TypedDict):
    n: int


def _emitting_graph() -> Any:
    def node(state: _State) -> _State:
        emit("step_started", "run-1", step_number=state["n"])
        return {"n": state["n"] + 1}

    builder = StateGraph(_State)
    builder.add_node("node", node)
    builder.add_edge(START, "node")
    return builder.compile()


def test_event_names() -> None:
    assert EVENTS == (
        "cache_hit",
        "route_chosen",
        "llm_attempt_started",
        "llm_attempt_finished",
        "step_started",
        "step_finished",
    )


def test_emit_outside_any_run_is_a_no_op() -> None:
    emit("step_started", "run-1", step_number=1)


def test_emit_in_a_runnable_that_is_no_graph_is_a_no_op() -> None:
    # A runnable context without LangGraph's runtime in its config, e.g. a node called directly.
    assert RunnableLambda(lambda x: emit("cache_hit", "r", level="exact") or x).invoke(3) == 3


def test_emit_in_a_run_without_custom_stream_is_a_no_op() -> None:
    app = _emitting_graph()
    assert app.invoke({"n": 1}) == {"n": 2}
    assert list(app.stream({"n": 1}, stream_mode="updates")) == [{"node": {"n": 2}}]


def test_emit_reaches_the_custom_stream() -> None:
    events = list(_emitting_graph().stream({"n": 1}, stream_mode="custom"))
    assert events == [{"event": "step_started", "run_id": "run-1", "step_number": 1}]


def test_a_failing_writer_never_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(_: Any) -> None:
        raise ValueError("consumer gone")

    monkeypatch.setattr("graph.progress.get_stream_writer", lambda: broken)
    with caplog.at_level(logging.WARNING, logger="graph.progress"):
        emit("step_started", "run-1", step_number=1)
    assert "consumer gone" in caplog.text


def _two_step_events() -> list[dict[str, Any]]:
    common = {"run_id": "r", "total_steps": 2, "tool_name": "todo_store"}
    return [
        {"event": "route_chosen", "run_id": "r", "planner": "rules", "tier": None, "model": None},
        {"event": "step_started", **common, "step_number": 1, "tool_input": {"action": "add"}},
        {
            "event": "step_finished",
            **common,
            "step_number": 1,
            "tool_input": {"action": "add", "text": "call mom", "todo_id": None},
            "ok": True,
            "output": {"id": "1", "text": "call mom", "completed": False},
            "error": None,
            "elapsed_ms": 3.2,
        },
        {"event": "step_started", **common, "step_number": 2, "tool_input": {"action": "list"}},
    ]


def test_view_lines_follow_the_steps() -> None:
    view = ProgressView()
    assert view.lines() == ["Planning…"]
    for event in _two_step_events():
        view.handle(event)
    assert view.lines() == [
        "✓ 1. todo_store(action='add', text='call mom') -> #1 call mom (3 ms)",
        "… 2. todo_store(action='list')",
        "Running step 2 of 2: todo_store…",
    ]
    view.handle(
        {
            "event": "step_finished",
            "run_id": "r",
            "step_number": 2,
            "total_steps": 2,
            "tool_name": "todo_store",
            "tool_input": {"action": "list"},
            "ok": False,
            "output": None,
            "error": "the store is locked",
            "elapsed_ms": 1.0,
        }
    )
    assert view.lines()[1] == "✗ 2. todo_store(action='list') -> FAILED: the store is locked (1 ms)"


def test_view_shows_llm_attempts_and_cache_hits() -> None:
    view = ProgressView()
    attempt = {"run_id": "r", "tier": "fast", "model": "m-1", "attempt": 1, "llm_call": 1}
    view.handle({"event": "llm_attempt_started", **attempt})
    assert view.status == "Asking m-1 (fast tier, attempt 1)"
    view.handle({"event": "llm_attempt_finished", **attempt, "outcome": "timeout", "error": "x"})
    view.handle({"event": "llm_attempt_finished", **attempt, "outcome": "plan", "error": None})
    assert view.lines() == ["✗ m-1 (fast): timeout", "✓ m-1 (fast): plan", "Checking the plan…"]
    view.handle({"event": "cache_hit", "run_id": "r", "level": "exact", "reason": "same request"})
    assert view.status == "Reusing a cached plan (same request)"
    view.handle({"event": "something_new", "run_id": "r"})  # newer servers may send more
    assert view.status == "Reusing a cached plan (same request)"


def test_view_renders_in_a_terminal() -> None:
    view = ProgressView()
    for event in _two_step_events():
        view.handle(event)
    out = io.StringIO()
    Console(file=out, force_terminal=True, width=100).print(view)
    text = out.getvalue()
    assert "✓ 1. todo_store(action='add', text='call mom') -> #1 call mom (3 ms)" in text
    assert "Running step 2 of 2: todo_store…" in text


class _FakeApp:
    """Stands in for a compiled graph: streams two events, then the final state."""

    def __init__(self, events: list[dict[str, Any]], response: dict[str, Any]) -> None:
        self.events, self.response = events, response
        self.modes: Any = None

    def stream(self, graph_input: Any, stream_mode: Any) -> Any:
        self.modes = stream_mode
        yield "values", {"prompt": graph_input}
        for event in self.events:
            yield "custom", event
        yield "values", {"prompt": graph_input, "response": self.response}


def test_run_with_progress_draws_live_and_returns_the_response() -> None:
    response = {"status": "completed", "answer": 1}
    app = _FakeApp(_two_step_events(), response)
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    assert run_with_progress(app, "add a todo", console) == response
    assert app.modes == ["custom", "values"]
    assert "-> #1 call mom" in out.getvalue()  # drawn while the run went on, then erased
