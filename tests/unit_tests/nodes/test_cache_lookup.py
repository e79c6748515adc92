from __future__ import annotations

from typing import Any

import pytest

from graph.plan import Plan, PlanStep
from graph.state import State
from nodes.cache_lookup import MAX_PROMPT_CHARS, cache_lookup

PLAN = Plan(
    steps=[PlanStep(step_number=1, tool_name="calculator", tool_input={"expression": "2+2"})],
    final_goal="x",
)


@pytest.mark.parametrize(
    ("prompt", "user_id", "fragment"),
    [
        (None, "u", "must be text"),
        (42, "u", "must be text"),
        ("", "u", "empty"),
        (" \n\t ", "u", "empty"),
        ("x" * (MAX_PROMPT_CHARS + 1), "u", "limit"),
        ("hi", None, "user_id"),
        ("hi", "", "user_id"),
        ("hi", "u" * 201, "user_id"),
    ],
)
def test_rejects_bad_input_with_a_sentence(
    services: Any, prompt: Any, user_id: Any, fragment: str
) -> None:
    update = cache_lookup(State(prompt=prompt, user_id=user_id), services=services)
    assert update["error_type"] == "invalid_request"
    assert fragment in update["error"]
    assert update["run_id"] and update["path"] == ["cache_lookup"]


def test_miss_normalizes_and_strips_control_characters(services: Any) -> None:
    update = cache_lookup(State(prompt="  what is\x00 2+2 ?? "), services=services)
    assert update["error"] is None and update["plan"] is None
    assert update["request"] == "what is 2+2 ??"
    assert update["normalized"] == "what is 2+2"


def test_hit_returns_the_plan_for_revalidation(services: Any) -> None:
    services.cache.store_plan("default", services.signature, "what is 2+2", PLAN, "r1")
    update = cache_lookup(State(prompt="what is 2+2?"), services=services)
    assert update["plan"] == PLAN and update["plan_source"] == "cache"
    assert update["cache_hit"]["level"] == "exact" and update["cache_hit"]["run_id"] == "r1"
    assert update["route_reason"] == update["cache_hit"]["reason"]
    assert isinstance(update["cache_entry_id"], int) and update["examples"] == []
    assert (
        cache_lookup(State(prompt="what is 2+2?", user_id="other"), services=services).get("plan")
        is None
    )


def test_template_hit_carries_the_new_values(services: Any) -> None:
    two_plus_three = PLAN.model_copy(
        update={"steps": [PLAN.steps[0].model_copy(update={"tool_input": {"expression": "2+3"}})]}
    )
    services.cache.store_plan("default", services.signature, "what is 2+3", two_plus_three, "r1")
    update = cache_lookup(State(prompt="what is 3+4"), services=services)
    assert update["plan"].steps[0].tool_input == {"expression": "3+4"}
    assert update["cache_hit"]["level"] == "template"
    assert "3 for 2, 4 for 3" in update["cache_hit"]["reason"]
    # "2+2" uses one value twice: which 2 is which cannot be told, so no template hit.
    services.cache.store_plan("u2", services.signature, "what is 2+2", PLAN, "r2")
    assert (
        cache_lookup(State(prompt="what is 5+7", user_id="u2"), services=services)["plan"] is None
    )


def test_cache_can_be_turned_off(tmp_path: Any) -> None:
    from tests.fakes import make_services

    services = make_services(tmp_path, cache_enabled=False)
    services.cache.store_plan("default", services.signature, "what is 2+2", PLAN, "r1")
    assert cache_lookup(State(prompt="what is 2+2"), services=services)["plan"] is None


def test_a_miss_gathers_examples_only_when_an_llm_plans(tmp_path: Any) -> None:
    from tests.fakes import fake_model, make_services

    offline = make_services(tmp_path / "a")
    offline.examples.add("default", offline.signature, "what is 2+2", PLAN, "r1")
    assert cache_lookup(State(prompt="what is 2 + 2 then"), services=offline)["examples"] == []
    online = make_services(tmp_path / "b", {"fast": fake_model()})
    online.examples.add("default", online.signature, "what is 2+2", PLAN, "r1")
    examples = cache_lookup(State(prompt="what is 2 + 2 then"), services=online)["examples"]
    assert [(e["request"], e["run_id"]) for e in examples] == [("what is 2+2", "r1")]
    assert examples[0]["plan"] == PLAN.model_dump()
    other_user = State(prompt="what is 2 + 2 then", user_id="other")
    assert cache_lookup(other_user, services=online)["examples"] == []
    off = make_services(tmp_path / "c", {"fast": fake_model()}, examples_enabled=False)
    off.examples.add("default", off.signature, "what is 2+2", PLAN, "r1")
    assert cache_lookup(State(prompt="what is 2 + 2 then"), services=off)["examples"] == []


def test_a_broken_cache_is_a_miss(services: Any) -> None:
    def broken(*args: Any) -> None:
        raise OSError("disk on fire")

    services.cache.lookup = broken
    update = cache_lookup(State(prompt="what is 2+2"), services=services)
    assert update["error"] is None and update["plan"] is None


def test_every_per_run_field_is_reset(services: Any) -> None:
    """On a checkpointed thread the previous run's state is still there."""
    previous = State(
        prompt="2+2",
        error="old",
        error_type="tool_error",
        plan=PLAN,
        plan_source="llm",
        steps=[{"ok": False}],
        validation_errors=["x"],
        llm_attempts=2,
        repairs=1,
        llm_error="e",
        tokens=9,
        answer=3,
        tier="fast",
        path=["a", "b"],
    )
    update = cache_lookup(previous, services=services)
    fresh = State(prompt="2+2")
    for name in (
        "error",
        "error_type",
        "plan",
        "plan_source",
        "steps",
        "validation_errors",
        "llm_attempts",
        "repairs",
        "llm_error",
        "tokens",
        "answer",
        "tier",
    ):
        assert update[name] == getattr(fresh, name), name
    assert update["path"] == ["cache_lookup"]
