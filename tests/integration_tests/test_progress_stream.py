"""Progress events through the whole graph (`stream_mode="custom"`) and in `crane run`."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import graph.progress
from graph import build_graph
from graph.cli import main, render
from tests.fakes import fake_model, openai_error, plan_message

TODO_CHAIN = "add a todo to call the plumber and then show me my tasks"


def calc_plan(expression: str) -> dict[str, Any]:
    step = {
        "step_number": 1,
        "tool_name": "calculator",
        "tool_input": {"expression": expression},
        "reasoning": "compute",
    }
    return {"steps": [step], "final_goal": "compute"}


def llm_app(*replies: Any, **settings: Any) -> Any:
    # One model serves every tier, so there is nothing to escalate to; tiny backoffs keep retries fast.
    settings = {"backoff_base_s": 0.001, "backoff_cap_s": 0.002} | settings
    return build_graph(chat_model=fake_model(*replies), pattern_first=False, **settings)


def stream_run(app: Any, prompt: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Return a run's progress events and its response, from one `stream` call."""
    events: list[dict[str, Any]] = []
    response: dict[str, Any] = {}
    for mode, chunk in app.stream({"prompt": prompt}, stream_mode=["custom", "updates"]):
        if mode == "custom":
            events.append(chunk)
        elif "history_recorder" in chunk:
            response = chunk["history_recorder"]["response"]
    json.dumps(events)  # what `langgraph dev` sends its clients must be JSON
    assert {e["run_id"] for e in events} == {response["run_id"]}
    return events, response


def names(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def test_offline_todo_chain_streams_routing_then_each_step() -> None:
    events = list(build_graph().stream({"prompt": TODO_CHAIN}, stream_mode="custom"))
    assert names(events) == [
        "route_chosen",
        "step_started",
        "step_finished",
        "step_started",
        "step_finished",
    ]
    route, start1, done1, start2, done2 = events
    assert route["planner"] == "rules" and route["tier"] is None and route["model"] is None
    assert "rule-based planner" in route["reason"] and route["complexity"] == "moderate"
    assert [e["step_number"] for e in events[1:]] == [1, 1, 2, 2]
    assert {e["tool_name"] for e in events[1:]} == {"todo_store"}
    assert {e["total_steps"] for e in events[1:]} == {2}
    assert start1["tool_input"]["action"] == "add" and start2["tool_input"]["action"] == "list"
    assert done1["ok"] and done1["output"]["text"] == "call the plumber" and done1["error"] is None
    assert done2["ok"] and [t["text"] for t in done2["output"]["todos"]] == ["call the plumber"]
    assert done1["elapsed_ms"] >= 0


def test_step_reference_is_resolved_in_the_finished_event() -> None:
    events, response = stream_run(build_graph(), "add buy eggs to my list, then mark it done")
    started, finished = (
        [e for e in events if e["event"] == kind and e["step_number"] == 2]
        for kind in ("step_started", "step_finished")
    )
    assert started[0]["tool_input"]["todo_id"] == "{{step_1.id}}"
    assert finished[0]["tool_input"]["todo_id"] == "1"
    assert finished[0]["output"] == response["answer"]


def test_a_failing_step_is_streamed_with_its_error() -> None:
    events, response = stream_run(build_graph(), "what is 1/0")
    finished = events[-1]
    assert finished["event"] == "step_finished" and not finished["ok"]
    assert finished["output"] is None and finished["error"] == response["steps"][0]["error"]


def test_cache_hit_is_streamed() -> None:
    app = build_graph()
    app.invoke({"prompt": "what is 15% of 200"})
    events, response = stream_run(app, "what is 15% of 200")
    assert names(events) == ["cache_hit", "step_started", "step_finished"]
    assert events[0]["level"] == "exact" == response["cache_hit"]["level"]
    assert events[0]["reason"] == response["cache_hit"]["reason"]
    assert events[-1]["output"] == 30


def test_llm_plan_streams_the_chosen_model() -> None:
    events, response = stream_run(
        llm_app(plan_message(calc_plan("17 * 3"))), "multiply seventeen by three, please"
    )
    assert names(events) == [
        "route_chosen",
        "llm_attempt_started",
        "llm_attempt_finished",
        "step_started",
        "step_finished",
    ]
    route, started, finished = events[:3]
    assert route["planner"] == "llm" and route["tier"] == "fast" and route["model"] == "fake-model"
    attempt = {"tier": "fast", "model": "fake-model", "attempt": 1, "llm_call": 1}
    assert started.items() >= attempt.items()
    assert finished.items() >= (attempt | {"outcome": "plan", "error": None}).items()
    assert events[-1]["output"] == 51 == response["answer"]


def test_llm_failures_then_fallback_show_each_attempt() -> None:
    events, response = stream_run(llm_app("not a plan", "still not a plan"), "what is 2 plus 2")
    assert names(events) == [
        "route_chosen",
        "llm_attempt_started",
        "llm_attempt_finished",
        "llm_attempt_started",
        "llm_attempt_finished",
        "step_started",
        "step_finished",
    ]
    finished = [e for e in events if e["event"] == "llm_attempt_finished"]
    assert [(e["attempt"], e["llm_call"], e["outcome"]) for e in finished] == [
        (1, 1, "invalid_output"),
        (2, 2, "invalid_output"),
    ]
    assert all(e["error"] for e in finished)
    assert response["plan_source"] == "fallback" and events[-1]["output"] == 4


def test_llm_error_before_fallback_is_streamed() -> None:
    events, response = stream_run(llm_app(openai_error("auth")), "what is 9 times 6")
    finished = [e for e in events if e["event"] == "llm_attempt_finished"]
    assert [e["outcome"] for e in finished] == ["auth"]
    assert response["plan_source"] == "fallback" and response["answer"] == 54


@pytest.mark.anyio
async def test_astream_interleaves_updates_and_events_in_order() -> None:
    chunks = [
        (mode, chunk["event"] if mode == "custom" else next(iter(chunk)))
        async for mode, chunk in build_graph().astream(
            {"prompt": TODO_CHAIN}, stream_mode=["updates", "custom"]
        )
    ]
    # A node's events come while it runs, so before its update; the executor's from its thread.
    assert chunks == [
        ("updates", "cache_lookup"),
        ("custom", "route_chosen"),
        ("updates", "complexity_router"),
        ("updates", "pattern_fallback"),
        ("updates", "validator"),
        ("custom", "step_started"),
        ("custom", "step_finished"),
        ("custom", "step_started"),
        ("custom", "step_finished"),
        ("updates", "executor"),
        ("updates", "history_recorder"),
    ]


@pytest.mark.anyio
async def test_astream_of_the_async_llm_planner(tmp_path: Path) -> None:
    app = llm_app(openai_error("server_error"), plan_message(calc_plan("6 * 7")))
    chunks = [
        (mode, chunk["event"] if mode == "custom" else next(iter(chunk)))
        async for mode, chunk in app.astream(
            {"prompt": "six times seven please"}, stream_mode=["updates", "custom"]
        )
    ]
    assert chunks[1:8] == [
        ("custom", "route_chosen"),
        ("updates", "complexity_router"),
        ("custom", "llm_attempt_started"),
        ("custom", "llm_attempt_finished"),
        ("updates", "llm_planner"),
        ("custom", "llm_attempt_started"),
        ("custom", "llm_attempt_finished"),
    ]
    events = [
        chunk
        async for chunk in llm_app(plan_message(calc_plan("6 * 7")), home=str(tmp_path)).astream(
            {"prompt": "six times seven please"}, stream_mode="custom"
        )
    ]
    assert events[1]["model"] == "fake-model" and events[2]["outcome"] == "plan"


def comparable(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k not in ("run_id", "latency_ms")}


def test_invoke_returns_the_same_response_as_a_stream(tmp_path: Path) -> None:
    prompt = "square root of 144, then double it"
    invoked = build_graph(home=str(tmp_path / "a")).invoke({"prompt": prompt})["response"]
    _, streamed = stream_run(build_graph(home=str(tmp_path / "b")), prompt)
    assert comparable(invoked) == comparable(streamed)
    assert invoked["answer"] == 24


# --- crane run ---------------------------------------------------------------------------------


def test_piped_crane_run_prints_exactly_the_rendering(capsys: pytest.CaptureFixture[str]) -> None:
    prompt = "square root of 144, then double it"
    assert main(["run", prompt]) == 0
    piped = capsys.readouterr().out
    assert main(["run", prompt, "--json", "--user", "bob"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert piped == render(response) + "\n"


def test_crane_run_at_a_terminal_shows_steps_live(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    live = io.StringIO()
    real = graph.progress.run_with_progress

    def on_a_terminal(app: Any, graph_input: Any, console: Console) -> dict[str, Any]:
        return real(app, graph_input, Console(file=live, force_terminal=True, width=120))

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(graph.progress, "run_with_progress", on_a_terminal)
    assert main(["run", TODO_CHAIN]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Plan from the rule-based planner") and "Answer: 1 todo(s)" in out
    drawn = live.getvalue()
    assert "✓ 1. todo_store(action='add', text='call the plumber') -> #1 call the plumber" in drawn
    assert "✓ 2. todo_store(action='list') -> 1 todo(s)" in drawn


def test_crane_run_json_at_a_terminal_stays_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def never(*_: Any) -> Any:
        raise AssertionError("--json must not draw progress")

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setattr(graph.progress, "run_with_progress", never)
    assert main(["run", "what is 6 times 7", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answer"] == 42


def test_log_records_during_the_live_view_go_through_its_console() -> None:
    import logging

    class Logging:
        """A graph stand-in whose run logs a warning between two progress events."""

        def stream(self, graph_input: Any, stream_mode: Any) -> Any:
            yield (
                "custom",
                {
                    "event": "step_started",
                    "step_number": 1,
                    "total_steps": 1,
                    "tool_name": "calculator",
                    "tool_input": {},
                    "run_id": "r",
                },
            )
            logging.getLogger("graph.anything").warning("the disk is nearly full")
            yield "values", {"response": {"answer": 4}}

    out = io.StringIO()
    before = logging.getLogger().handlers[:]
    response = graph.progress.run_with_progress(
        Logging(), {"prompt": "x"}, Console(file=out, force_terminal=True, width=100)
    )
    assert response == {"answer": 4}
    assert "the disk is nearly full" in out.getvalue()  # printed by the console, above the view
    assert logging.getLogger().handlers == before
