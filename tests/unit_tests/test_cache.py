from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from graph.cache import SqlitePlanCache, normalize
from graph.history import SqliteHistory
from graph.plan import Plan

PLAN = Plan.model_validate(
    {
        "steps": [
            {"step_number": 1, "tool_name": "calculator", "tool_input": {"expression": "2+2"}}
        ],
        "final_goal": "x",
    }
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("what is 2+2?", "what is 2+2"),
        ("  what   is\t2+2 ?? ", "what is 2+2"),
        ("Add a todo to Call Mom", "Add a todo to Call Mom"),  # case is a literal a plan may copy
        ("what is 5!", "what is 5!"),  # a factorial
        ("what is 5.", "what is 5."),
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_normalize_keeps_distinct_requests_distinct() -> None:
    assert normalize("add a todo to call mom") != normalize("add a todo to Call Mom")
    assert normalize("what is 15% of 200") != normalize("what is 15% of 300")
    assert normalize("what is 5!") != normalize("what is 5")


def test_store_lookup_evict(tmp_path: Path) -> None:
    cache = SqlitePlanCache(tmp_path / "c.sqlite")
    assert cache.lookup("u", "sig", "q") is None
    cache.store("u", "sig", "q", PLAN, "run-1")
    hit = cache.lookup("u", "sig", "q")
    assert hit is not None and hit.plan == PLAN and hit.run_id == "run-1" and hit.level == "exact"
    assert cache.lookup("other-user", "sig", "q") is None
    assert cache.lookup("u", "other-signature", "q") is None
    cache.evict("u", "sig", "q")
    assert cache.lookup("u", "sig", "q") is None


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    SqlitePlanCache(tmp_path / "c.sqlite").store("u", "s", "q", PLAN, "r")
    assert SqlitePlanCache(tmp_path / "c.sqlite").lookup("u", "s", "q") is not None


def test_history_record_and_recent(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "h.sqlite")
    base = {
        "status": "completed",
        "plan_source": "pattern",
        "plan": PLAN.model_dump(),
        "steps": [],
        "answer": {"todos": []},
        "error": None,
        "error_type": None,
        "complexity": "simple",
        "tier": None,
        "model": None,
        "tokens": 0,
        "cost_usd": 0.0,
        "latency_ms": 1.0,
        "llm_attempts": 0,
        "path": ["a"],
    }
    for i, user in enumerate(["a", "b", "a"]):
        history.record(
            base | {"run_id": f"r{i}", "user_id": user, "created_at": float(i), "prompt": f"p{i}"}
        )
    assert [r["run_id"] for r in history.recent("a")] == ["r2", "r0"]
    assert [r["run_id"] for r in history.recent()] == ["r2", "r1", "r0"]
    assert history.recent("a")[0]["plan"] == PLAN.model_dump() and history.recent("a")[0][
        "answer"
    ] == {"todos": []}


def test_history_concurrent_writers(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "h.sqlite")
    row = {
        "user_id": "u",
        "prompt": "p",
        "status": "failed",
        "steps": [],
        "latency_ms": 1.0,
        "path": [],
    }

    def write(i: int) -> None:
        history.record(row | {"run_id": f"r{i}", "created_at": float(i)})

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(write, range(50)))
    assert len(history.recent(limit=100)) == 50


def test_planner_signature_changes_with_the_tools(tmp_path: Path) -> None:
    from graph.services import planner_signature
    from tools.calculator import calculator
    from tools.registry import ToolRegistry, build_registry
    from tools.todo_store import TodoStore

    full = build_registry(TodoStore(tmp_path / "t.sqlite"))
    assert planner_signature(full) == planner_signature(
        build_registry(TodoStore(tmp_path / "u.sqlite"))
    )
    assert planner_signature(full) != planner_signature(ToolRegistry([calculator]))
    renamed = calculator.model_copy(update={"description": calculator.description + " Also trig."})
    assert planner_signature(full) != planner_signature(
        ToolRegistry([renamed, full.get("todo_store")])
    )
