from __future__ import annotations

from typing import Any

import pytest

from graph.errors import StepReferenceError
from graph.plan import Plan
from graph.state import State
from nodes.executor import executor, resolve


def plan(*steps: tuple[str, dict[str, Any]]) -> Plan:
    return Plan.model_validate(
        {
            "steps": [
                {"step_number": n, "tool_name": t, "tool_input": i}
                for n, (t, i) in enumerate(steps, 1)
            ],
            "final_goal": "x",
        }
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{step_1.id}}", "7"),
        ("{{ step_1.id }}", "7"),
        ("{{step_1}}", {"id": "7", "n": 3}),
        ("{{step_2.result}} * 2", "42 * 2"),
        ("{{step_3.result}} ** 2", "(-5) ** 2"),
        ("{{step_3}}", -5),
        ("{{step_2}}", 42),
        ("{{step_1.n}}", 3),
        ({"a": ["{{step_1.n}}"]}, {"a": [3]}),
        ("no refs", "no refs"),
        (None, None),
    ],
)
def test_resolve(value: Any, expected: Any) -> None:
    assert resolve(value, {1: {"id": "7", "n": 3}, 2: 42, 3: -5}) == expected


@pytest.mark.parametrize("value", ["{{step_3.id}}", "{{step_1.missing}}", "{{step_2.id}}"])
def test_resolve_errors(value: str) -> None:
    with pytest.raises(StepReferenceError):
        resolve(value, {1: {"id": "7"}, 2: 42})


def test_runs_steps_in_order_and_resolves_references(services: Any) -> None:
    p = plan(
        ("todo_store", {"action": "add", "text": "call mom", "todo_id": None}),
        ("todo_store", {"action": "complete", "text": None, "todo_id": "{{step_1.id}}"}),
        ("calculator", {"expression": "{{step_1.id}} + 41"}),
    )
    update = executor(State(plan=p, user_id="u1"), services=services)
    assert [s["ok"] for s in update["steps"]] == [True, True, True]
    assert update["steps"][1]["output"]["completed"] is True
    assert update["answer"] == 42
    assert services.todos.list("u1")["todos"][0]["completed"] is True


def test_stops_at_the_first_failing_step(services: Any) -> None:
    p = plan(
        ("calculator", {"expression": "1/0"}),
        ("todo_store", {"action": "add", "text": "never", "todo_id": None}),
    )
    update = executor(State(plan=p), services=services)
    assert len(update["steps"]) == 1 and update["error_type"] == "tool_error"
    assert "Step 1 (calculator) failed" in update["error"] and update["answer"] is None
    assert services.todos.list("default")["todos"] == []


def test_user_id_is_injected_from_state_not_the_plan(services: Any) -> None:
    services.todos.add("alice", "secret")
    p = plan(("todo_store", {"action": "list", "text": None, "todo_id": None}))
    update = executor(State(plan=p, user_id="mallory"), services=services)
    assert update["answer"] == {"todos": []}


def test_an_unexpected_tool_exception_fails_the_step_not_the_run(services: Any) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bug")

    services.todos.run = explode
    update = executor(
        State(plan=plan(("todo_store", {"action": "list", "text": None, "todo_id": None}))),
        services=services,
    )
    assert update["steps"][0]["ok"] is False and "unexpectedly" in update["error"]


def test_unknown_tool_at_run_time_fails_the_step(services: Any) -> None:
    update = executor(State(plan=plan(("abacus", {}))), services=services)
    assert "unknown tool" in update["steps"][0]["error"]
