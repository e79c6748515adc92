from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graph.breaker import BreakerBoard
from tests.fakes import FakeChatModel, fake_model, make_services


def _model(name: str) -> FakeChatModel:
    model = fake_model()
    model.model_name = name
    return model


def _three_tiers() -> dict[str, Any]:
    return {"fast": _model("m-fast"), "smart": _model("m-smart"), "reasoning": _model("m-reason")}


def _midnight_utc() -> float:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def _today() -> float:
    return time.time()


def _yesterday() -> float:
    return _midnight_utc() - 3600


def _spend(services: Any, cost: float, created_at: float) -> None:
    services.history.record({"created_at": created_at, "cost_usd": cost, "user_id": "u"})


def _open(services: Any, tier: str) -> None:
    services.breaker(tier).record_failure("auth", immediate=True)
    assert services.breaker(tier).state == "open"


class BrokenHistory:
    """A history whose reads fail like a locked or corrupt SQLite file."""

    def record(self, run: dict[str, Any]) -> None:
        raise sqlite3.OperationalError("database is locked")

    def recent(self, user_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        raise sqlite3.OperationalError("database is locked")

    def cost_since(self, since: float) -> float:
        raise sqlite3.OperationalError("database is locked")

    def usage_by_model(self, since: float = 0.0) -> dict[str, dict[str, float]]:
        raise sqlite3.OperationalError("database is locked")


# --- budget_level ------------------------------------------------------------------------------


def test_no_budget_is_always_ok(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    _spend(services, 1000.0, _today())
    assert services.budget_level() == "ok"


def test_no_budget_never_reads_history(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    services.history = BrokenHistory()
    assert services.budget_level() == "ok"


def test_budget_ok_when_nothing_spent(tmp_path: Path) -> None:
    assert make_services(tmp_path, _three_tiers(), budget_usd=1.0).budget_level() == "ok"


@pytest.mark.parametrize(
    ("spent_today", "level"),
    [
        (0.0, "ok"),
        (0.79, "ok"),
        (0.8, "low"),
        (0.99, "low"),
        (1.0, "spent"),
        (3.0, "spent"),
    ],
)
def test_budget_level_from_todays_spend(tmp_path: Path, spent_today: float, level: str) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=1.0)
    # Split over several runs: the level comes from the sum.
    _spend(services, spent_today / 2, _today())
    _spend(services, spent_today / 2, _today())
    assert services.budget_level() == level


def test_yesterdays_spend_does_not_count(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=1.0)
    _spend(services, 50.0, _yesterday())
    _spend(services, 0.1, _today())
    assert services.budget_level() == "ok"


def test_spend_at_midnight_counts_for_today(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=1.0)
    _spend(services, 1.0, _midnight_utc())
    _spend(services, 5.0, _midnight_utc() - 0.001)
    assert services.budget_level() == "spent"


def test_zero_budget_is_spent(tmp_path: Path) -> None:
    assert make_services(tmp_path, _three_tiers(), budget_usd=0.0).budget_level() == "spent"


def test_unreadable_history_fails_closed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=100.0)
    services.history = BrokenHistory()
    assert services.budget_level() == "spent"
    assert any("budget" in r.getMessage() for r in caplog.records)
    tier, reasons = services.choose_tier("fast")
    assert tier is None and reasons


# --- choose_tier --------------------------------------------------------------------------------


@pytest.mark.parametrize("preferred", ["fast", "smart", "reasoning"])
def test_preferred_tier_when_all_healthy(tmp_path: Path, preferred: str) -> None:
    services = make_services(tmp_path, _three_tiers())
    assert services.choose_tier(preferred) == (preferred, [])


def test_open_breaker_is_skipped_upwards_first(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    _open(services, "smart")
    tier, reasons = services.choose_tier("smart")
    assert tier == "reasoning"
    assert len(reasons) == 1 and "smart" in reasons[0] and "circuit open" in reasons[0]
    assert "m-smart" in reasons[0]


def test_open_breakers_then_skipped_downwards(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    _open(services, "smart")
    _open(services, "reasoning")
    tier, reasons = services.choose_tier("smart")
    assert tier == "fast"
    assert [r.split(":")[0] for r in reasons] == ["smart", "reasoning"]


def test_top_tier_open_goes_down_nearest_first(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    _open(services, "reasoning")
    assert services.choose_tier("reasoning")[0] == "smart"


def test_all_breakers_open_gives_none_with_every_reason(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    for tier in ("fast", "smart", "reasoning"):
        _open(services, tier)
    tier, reasons = services.choose_tier("fast")
    assert tier is None
    assert len(reasons) == 3 and all("circuit open" in r for r in reasons)


def test_missing_tiers_are_skipped_silently(tmp_path: Path) -> None:
    services = make_services(tmp_path, {"reasoning": _model("m-reason")})
    assert services.choose_tier("fast") == ("reasoning", [])


def test_offline_has_no_tier(tmp_path: Path) -> None:
    assert make_services(tmp_path).choose_tier("smart") == (None, [])


def test_low_budget_only_the_cheapest_tier(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=1.0)
    _spend(services, 0.9, _today())
    tier, reasons = services.choose_tier("smart")
    assert tier == "fast"
    assert len(reasons) == 2 and all("budget" in r for r in reasons)


def test_low_budget_cheapest_configured_tier(tmp_path: Path) -> None:
    models = {"smart": _model("m-smart"), "reasoning": _model("m-reason")}
    services = make_services(tmp_path, models, budget_usd=1.0)
    _spend(services, 0.9, _today())
    assert services.choose_tier("reasoning")[0] == "smart"


def test_low_budget_with_cheapest_tier_open_gives_none(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=1.0)
    _spend(services, 0.9, _today())
    _open(services, "fast")
    tier, reasons = services.choose_tier("fast")
    assert tier is None and len(reasons) == 3


def test_spent_budget_gives_none_with_budget_reasons(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=1.0)
    _spend(services, 1.0, _today())
    tier, reasons = services.choose_tier("fast")
    assert tier is None
    assert len(reasons) == 3 and all("budget" in r for r in reasons)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _with_clock(services: Any) -> FakeClock:
    clock = FakeClock()
    services.breakers = BreakerBoard(cooldown_s=30.0, clock=clock, wall_clock=lambda: 1.7e9)
    return clock


def test_choose_tier_never_takes_the_half_open_trial(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    clock = _with_clock(services)
    breaker = services.breaker("fast")
    _open(services, "fast")
    assert services.choose_tier("fast")[0] == "smart"
    clock.now += 31  # the cooldown has elapsed
    assert services.choose_tier("fast")[0] == "fast"
    assert services.choose_tier("fast")[0] == "fast"
    assert breaker.state == "open"
    assert breaker.allow() is True  # the trial is still there for the actual call


# --- escalation_tier ----------------------------------------------------------------------------


def test_escalation_goes_one_tier_up(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    assert services.escalation_tier("fast") == "smart"
    assert services.escalation_tier("smart") == "reasoning"


def test_no_escalation_from_the_top(tmp_path: Path) -> None:
    assert make_services(tmp_path, _three_tiers()).escalation_tier("reasoning") is None


def test_escalation_skips_a_tier_serving_the_same_model(tmp_path: Path) -> None:
    models = {"fast": _model("same"), "smart": _model("same"), "reasoning": _model("other")}
    services = make_services(tmp_path, models)
    assert services.escalation_tier("fast") == "reasoning"


def test_escalation_none_when_every_higher_tier_is_the_same_model(tmp_path: Path) -> None:
    models = {"fast": _model("same"), "smart": _model("same"), "reasoning": _model("same")}
    services = make_services(tmp_path, models)
    assert services.escalation_tier("fast") is None
    assert services.escalation_tier("smart") is None


def test_same_model_name_on_another_endpoint_is_a_different_model(tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI

    remote = ChatOpenAI(model="same", base_url="http://127.0.0.1:9/v1", api_key="sk-test")
    services = make_services(tmp_path, {"fast": _model("same"), "smart": remote})
    assert services.escalation_tier("fast") == "smart"


def test_escalation_skips_an_open_breaker(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    _open(services, "smart")
    assert services.escalation_tier("fast") == "reasoning"
    _open(services, "reasoning")
    assert services.escalation_tier("fast") is None


def test_escalation_skips_missing_tiers(tmp_path: Path) -> None:
    services = make_services(tmp_path, {"fast": _model("a"), "reasoning": _model("b")})
    assert services.escalation_tier("fast") == "reasoning"


def test_escalation_from_an_unconfigured_tier(tmp_path: Path) -> None:
    services = make_services(tmp_path, {"smart": _model("a")})
    assert services.escalation_tier("fast") == "smart"


def test_no_escalation_on_low_or_spent_budget(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers(), budget_usd=1.0)
    _spend(services, 0.85, _today())
    assert services.escalation_tier("fast") is None
    _spend(services, 0.5, _today())
    assert services.escalation_tier("fast") is None


def test_escalation_does_not_take_the_half_open_trial(tmp_path: Path) -> None:
    services = make_services(tmp_path, _three_tiers())
    clock = _with_clock(services)
    breaker = services.breaker("smart")
    _open(services, "smart")
    assert services.escalation_tier("fast") == "reasoning"
    clock.now += 31
    assert services.escalation_tier("fast") == "smart"
    assert breaker.state == "open" and breaker.allow() is True


# --- breakers per tier --------------------------------------------------------------------------


def test_tiers_with_the_same_model_share_a_breaker(tmp_path: Path) -> None:
    models = {"fast": _model("same"), "smart": _model("same"), "reasoning": _model("other")}
    services = make_services(tmp_path, models)
    assert services.breaker("fast") is services.breaker("smart")
    assert services.breaker("fast") is not services.breaker("reasoning")
    _open(services, "fast")
    assert services.choose_tier("smart")[0] == "reasoning"


def test_breaker_settings_come_from_the_context(tmp_path: Path) -> None:
    services = make_services(
        tmp_path,
        _three_tiers(),
        breaker_threshold=2,
        breaker_cooldown_s=5.0,
        breaker_max_cooldown_s=50.0,
        llm_timeout_s=3.0,
    )
    breaker = services.breaker("fast")
    assert breaker.failure_threshold == 2
    assert breaker.cooldown_s == 5.0 and breaker.max_cooldown_s == 50.0
    assert breaker.trial_timeout_s == 6.0
    breaker.record_failure("timeout")
    assert breaker.state == "closed"
    breaker.record_failure("timeout")
    assert breaker.state == "open"


def test_prices_come_from_the_context(tmp_path: Path) -> None:
    services = make_services(tmp_path, prices='{"m-fast": {"input": 1, "output": 2}}')
    assert services.prices.cost("m-fast", 1_000_000, 1_000_000) == pytest.approx(3.0)
    assert services.prices.price_for("gpt-4o-mini") is not None
