from __future__ import annotations

from typing import Any

import pytest

from graph.state import State
from nodes.complexity_router import complexity_router, measure, score
from tests.fakes import fake_model, make_services


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ("what is 8% of 50", "simple"),
        ("show me my tasks", "simple"),
        ("add a todo to call mom and then show me my list", "moderate"),
        ("sum 1, 2, 3, 4 and 5", "moderate"),
        ("if my list has more than three todos, delete the oldest one", "complex"),
        ("add milk, then add eggs, then show me everything", "complex"),
        ("complete every todo that mentions the garden", "complex"),
    ],
)
def test_score(request_: str, expected: str) -> None:
    assert score(measure(request_)) == expected


def test_features_are_recorded() -> None:
    features = measure("add a todo to call mom and then show me my list")
    assert features["words"] == 12 and features["connectors"] == 1
    assert features["pattern_steps"] == 2 and features["pattern_confident"] is True


def test_offline_goes_to_the_rule_planner(services: Any) -> None:
    update = complexity_router(State(request="what is the weather"), services=services)
    assert update["tier"] is None and "OPENAI_API_KEY" in update["route_reason"]
    assert update["complexity"] == "simple" and update["features"]["pattern_confident"] is False


@pytest.mark.parametrize(
    ("request_", "pattern_first", "tier"),
    [
        ("what is 8% of 50", True, None),
        ("what is 8% of 50", False, "fast"),
        ("what is the weather", True, "fast"),
        ("add a todo to call mom and then show me my list", True, "fast"),
        ("if it rains, remind me to take an umbrella", True, "smart"),
    ],
)
def test_tier_choice_with_an_llm(
    tmp_path: Any, request_: str, pattern_first: bool, tier: str | None
) -> None:
    models = {"fast": fake_model(), "smart": fake_model()}
    services = make_services(tmp_path, models=models, pattern_first=pattern_first)
    update = complexity_router(State(request=request_), services=services)
    assert update["tier"] == tier
    assert update["route_reason"]


def test_missing_tier_uses_a_configured_one(tmp_path: Any) -> None:
    services = make_services(tmp_path, models={"fast": fake_model()})
    update = complexity_router(
        State(request="if it rains, remind me to take an umbrella"), services=services
    )
    assert update["complexity"] == "complex" and update["tier"] == "fast"


def test_pattern_first_applies_whichever_tiers_are_configured(tmp_path: Any) -> None:
    services = make_services(tmp_path, models={"smart": fake_model()})
    assert complexity_router(State(request="what is 2+2"), services=services)["tier"] is None
