from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from graph.services import SPEND_REFRESH_S, DailySpend
from tests.fakes import InMemoryHistory, fake_model, make_services, plan_message


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(cost: float, created_at: float) -> dict[str, Any]:
    return {"user_id": "u", "created_at": created_at, "cost_usd": cost}


def test_a_cost_moves_from_pending_to_recorded_without_being_counted_twice() -> None:
    import time

    history, clock = InMemoryHistory(), Clock()
    spend = DailySpend(history.cost_since, clock)
    assert spend.total() == 0
    spend.add(0.5)
    assert spend.total() == 0.5
    history.record(run(0.5, time.time()))  # recorded, then settled: still 0.5, never 1.0
    assert spend.total() == 0.5
    spend.settle(0.5, recorded=True)
    assert spend.total() == 0.5
    clock.now += SPEND_REFRESH_S  # re-read from history: the same 0.5
    assert spend.total() == pytest.approx(0.5)


def test_other_processes_spend_is_seen_after_a_refresh() -> None:
    import time

    history, clock = InMemoryHistory(), Clock()
    spend = DailySpend(history.cost_since, clock)
    assert spend.total() == 0
    history.record(run(2.0, time.time()))  # another process's run
    assert spend.total() == 0  # no I/O until the refresh interval has passed
    clock.now += SPEND_REFRESH_S
    assert spend.total() == 2.0


def test_a_run_history_lost_stays_counted() -> None:
    spend = DailySpend(InMemoryHistory().cost_since, Clock())
    spend.add(0.3)
    spend.settle(0.3, recorded=False)
    assert spend.total() == 0.3


def test_a_failed_history_write_does_not_free_the_budget(tmp_path: Any) -> None:
    from graph.state import State
    from nodes.history_recorder import history_recorder

    plan = {
        "steps": [
            {
                "step_number": 1,
                "tool_name": "calculator",
                "tool_input": {"expression": "1+1"},
                "reasoning": "",
            }
        ],
        "final_goal": "x",
    }
    services = make_services(
        tmp_path, models={"fast": fake_model(plan_message(plan))}, budget_usd=1.0
    )

    def broken(row: dict[str, Any]) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    services.history.record = broken
    services.spend.add(1.5)
    history_recorder(State(request="x", run_id="r", cost_usd=1.5), services=services)
    assert services.budget_level() == "spent"
