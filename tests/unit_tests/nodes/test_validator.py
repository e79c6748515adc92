from __future__ import annotations

from typing import Any

import pytest

from graph.plan import Plan
from graph.state import State
from nodes.validator import plan_errors, validator


def plan(*steps: tuple[int, str, Any]) -> Plan:
    return Plan.model_validate(
        {
            "steps": [
                {"step_number": n, "tool_name": t, "tool_input": i, "reasoning": ""}
                for n, t, i in steps
            ],
            "final_goal": "x",
        }
    )


TODO_LIST = {"action": "list", "text": None, "todo_id": None}


def test_numeric_todo_id_is_accepted_as_the_tool_accepts_it(services: Any) -> None:
    p = plan((1, "todo_store", {"action": "complete", "text": None, "todo_id": 3}))
    assert plan_errors(p, services.tools) == []


def test_valid_plan_has_no_errors(services: Any) -> None:
    p = plan(
        (1, "todo_store", {"action": "add", "text": "a", "todo_id": None}),
        (2, "todo_store", {"action": "complete", "text": None, "todo_id": "{{step_1.id}}"}),
        (3, "calculator", {"expression": "{{step_1.id}} * 2"}),
    )
    assert plan_errors(p, services.tools) == []


@pytest.mark.parametrize(
    ("p", "fragment"),
    [
        (None, "no plan"),
        (plan(), "1 to 10 steps"),
        (plan(*[(i, "todo_store", TODO_LIST) for i in range(1, 12)]), "1 to 10 steps"),
        (plan((1, "abacus", {})), "unknown tool 'abacus'"),
        (plan((2, "todo_store", TODO_LIST)), "numbered 2"),
        (plan((1, "todo_store", {"action": "burn", "text": None, "todo_id": None})), "action"),
        (
            plan((1, "todo_store", {"action": "add", "text": None, "todo_id": None})),
            "needs a non-empty 'text'",
        ),
        (
            plan((1, "todo_store", {"action": "delete", "text": None, "todo_id": None})),
            "needs 'todo_id' or 'text'",
        ),
        (
            plan((1, "todo_store", TODO_LIST | {"user_id": "alice"})),
            "unknown argument(s) for todo_store: user_id",
        ),
        (plan((1, "calculator", {})), "expression"),
        (plan((1, "calculator", {"expression": 5})), "expression"),
        (plan((1, "calculator", {"expression": "2 +* 3"})), "syntax"),
        (plan((1, "calculator", {"expression": "__import__('os')"})), "calculator"),
        (plan((1, "calculator", {"expression": "{{step_1.result}} + 1"})), "refers to step 1"),
        (
            plan(
                (1, "calculator", {"expression": "1"}),
                (2, "calculator", {"expression": "{{step_3.result}}"}),
            ),
            "refers to step 3",
        ),
    ],
)
def test_invalid_plans(services: Any, p: Plan | None, fragment: str) -> None:
    errors = plan_errors(p, services.tools)
    assert errors and any(fragment in e for e in errors), errors


def cached(services: Any, p: Plan) -> State:
    services.cache.store_plan("default", services.signature, "q", p, "r0")
    hit = services.cache.lookup("default", services.signature, "q")
    return State(plan=hit.plan, plan_source="cache", normalized="q", cache_entry_id=hit.entry_id)


def test_node_writes_errors_and_evicts_stale_cache_entries(services: Any) -> None:
    bad = plan((1, "abacus", {}))
    services.examples.add("default", services.signature, "q", bad, "r0")
    state = cached(services, bad)
    state.cache_hit = {"run_id": "r0", "level": "exact"}
    update = validator(state, services=services)
    assert update["validation_errors"]
    assert update["cache_hit"] is None and update["cache_entry_id"] is None
    assert services.cache.lookup("default", services.signature, "q") is None
    # the run that taught the rejected plan teaches nothing any more
    assert services.examples.similar("default", services.signature, "q", 3) == []


def test_node_keeps_cache_for_valid_plans(services: Any) -> None:
    good = plan((1, "calculator", {"expression": "1+1"}))
    assert validator(cached(services, good), services=services)["validation_errors"] == []
    assert services.cache.lookup("default", services.signature, "q") is not None


@pytest.mark.parametrize(
    ("todo_id", "ok"),
    [
        ("3", True),
        (" 12 ", True),
        ("{{step_1.id}}", True),
        ("passport", False),
        ("3rd", False),
        ("call mom {{step_1.id}}", False),  # a reference inside words is still words
        ("{{step_1.text}}", False),  # the todo's words, not its id
    ],
)
def test_todo_id_must_be_a_number_or_a_reference(services: Any, todo_id: str, ok: bool) -> None:
    steps = [
        {
            "step_number": 1,
            "tool_name": "todo_store",
            "tool_input": {"action": "add", "text": "renew my passport", "todo_id": None},
        },
        {
            "step_number": 2,
            "tool_name": "todo_store",
            "tool_input": {"action": "complete", "text": None, "todo_id": todo_id},
        },
    ]
    errors = plan_errors(Plan.model_validate({"steps": steps, "final_goal": "x"}), services.tools)
    if ok:
        assert errors == []
    else:
        # a local model wrote todo_id "passport": the repair message says where the words go
        assert len(errors) == 1 and "put them in 'text'" in errors[0] and todo_id in errors[0]


def test_a_rejected_llm_plan_records_the_tier_to_escalate_to(tmp_path: Any) -> None:
    from tests.fakes import fake_model, make_services

    fast, smart = fake_model(), fake_model()
    smart.model_name = "smart-model"
    services = make_services(tmp_path, models={"fast": fast, "smart": smart})
    bad = plan((1, "abacus", {}))
    update = validator(State(plan=bad, plan_source="llm", tier="fast"), services=services)
    assert update["validation_errors"] and update["next_tier"] == "smart"
    good = plan((1, "todo_store", TODO_LIST))
    assert "next_tier" not in validator(
        State(plan=good, plan_source="llm", tier="fast"), services=services
    )
