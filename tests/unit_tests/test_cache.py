from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import FakeEmbeddings

from graph.cache import EMBED_COOLDOWN_S, PlanCache, RequestVectors
from graph.context import Context
from graph.guard import normalize, read_request
from graph.history import SqliteHistory
from graph.plan import Plan
from graph.services import open_plan_stores


def calc_plan(expression: str) -> Plan:
    step = {"step_number": 1, "tool_name": "calculator", "tool_input": {"expression": expression}}
    return Plan.model_validate({"steps": [step], "final_goal": "x"})


PLAN = calc_plan("2+2")


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


def open_cache(home: Path, embeddings: str = "hash", **settings: Any) -> PlanCache:
    context = Context.from_env(home=str(home), embeddings=embeddings, **settings)
    return open_plan_stores(context, home)[0]


def test_store_lookup_evict(tmp_path: Path) -> None:
    cache = open_cache(tmp_path)
    assert cache.lookup("u", "sig", "q") is None
    cache.store_plan("u", "sig", "q", PLAN, "run-1")
    hit = cache.lookup("u", "sig", "q?")
    assert hit is not None and hit.plan == PLAN and hit.run_id == "run-1" and hit.level == "exact"
    assert cache.lookup("other-user", "sig", "q") is None
    assert cache.lookup("u", "other-signature", "q") is None
    cache.evict(hit.entry_id)
    assert cache.lookup("u", "sig", "q") is None


def test_cache_persists_across_instances(tmp_path: Path) -> None:
    open_cache(tmp_path).store_plan("u", "s", "what is 2+2", PLAN, "r")
    reopened = open_cache(tmp_path)
    assert reopened.lookup("u", "s", "what is 2+2").level == "exact"
    assert reopened.lookup("u", "s", "please what is 2+2").level == "semantic"


def test_semantic_hit_needs_the_threshold_and_equal_parameters(tmp_path: Path) -> None:
    plan = calc_plan("15% * 200")
    cache = open_cache(tmp_path, "local", cache_threshold=0.5)
    cache.store_plan("u", "s", "what is 15% of 200", plan, "r1")
    hit = cache.lookup("u", "s", "calculate 15 percent of 200")
    assert hit is not None and hit.level == "semantic" and hit.plan == plan
    assert hit.similarity is not None and hit.similarity >= 0.5
    assert "similarity" in hit.reason and "same parameters" in hit.reason
    assert cache.lookup("u", "s", "calculate 15 percent of 300") is None  # a near miss
    strict = open_cache(tmp_path, "local", cache_threshold=0.999)
    assert strict.lookup("u", "s", "calculate 15 percent of 200") is None


def test_an_embedder_failure_costs_only_the_semantic_level(tmp_path: Path) -> None:
    class Broken(FakeEmbeddings):
        def embed_query(self, text: str) -> list[float]:
            raise RuntimeError("endpoint down")

    context = Context.from_env(home=str(tmp_path))
    cache = open_plan_stores(context, tmp_path, Broken(size=8))[0]
    cache.store_plan("u", "s", "what is 2+3", PLAN, "r1")  # stored unembedded
    assert cache.lookup("u", "s", "what is 2+3").level == "exact"
    assert cache.lookup("u", "s", "please what is 2+3") is None


def test_entries_expire_and_the_cap_keeps_the_most_recently_used(tmp_path: Path) -> None:
    cache = open_cache(tmp_path, cache_max_entries=2)
    for i in range(3):
        cache.store_plan("u", "s", f"request {i}", PLAN, f"r{i}")
        cache.lookup("u", "s", "request 0")  # keeps request 0 in use
    assert cache.lookup("u", "s", "request 0") is not None
    assert cache.lookup("u", "s", "request 1") is None
    assert cache.lookup("u", "s", "request 2") is not None


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


class Counting(FakeEmbeddings):
    """Embeds with FakeEmbeddings' random vectors, or fails/returns `bad` when told to."""

    calls: int = 0
    fail: bool = False
    bad: list[float] | None = None

    def embed_query(self, text: str) -> list[float]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("endpoint down")
        return self.bad if self.bad is not None else [1.0] + [0.0] * (self.size - 1)


def test_after_an_embedder_failure_requests_skip_it_for_a_cooldown() -> None:
    now = [0.0]
    embedder = Counting(size=4, fail=True)
    vectors = RequestVectors(lambda: embedder, "test", clock=lambda: now[0])
    assert vectors.vector("a") is None and vectors.vector("b") is None
    assert embedder.calls == 1  # the second request did not wait for a dead embedder
    now[0] += EMBED_COOLDOWN_S + 1
    embedder.fail = False
    assert vectors.vector("c") == [1.0, 0.0, 0.0, 0.0] and embedder.calls == 2


@pytest.mark.parametrize("bad", [[], [float("nan")] * 4, [1.0, 0.0]])
def test_unusable_vectors_are_no_vectors(bad: list[float]) -> None:
    embedder = Counting(size=4)
    vectors = RequestVectors(lambda: embedder, "test")
    assert vectors.vector("first") is not None  # 4 dimensions from now on
    embedder.bad = bad
    assert vectors.vector("second") is None


def test_an_unusable_vector_still_stores_the_exact_and_template_levels(tmp_path: Path) -> None:
    context = Context.from_env(home=str(tmp_path))
    cache = open_plan_stores(context, tmp_path, Counting(size=4, bad=[float("nan")] * 4))[0]
    plan = calc_plan("2+3")
    cache.store_plan("u", "s", "what is 2+3", plan, "r1")
    assert cache.lookup("u", "s", "what is 2+3").level == "exact"
    assert cache.lookup("u", "s", "what is 4+5").level == "template"


def test_the_vector_space_names_its_dimension(tmp_path: Path) -> None:
    """A model swapped for one of another size starts a new space instead of failing every put."""
    context = Context.from_env(home=str(tmp_path))
    open_plan_stores(context, tmp_path, FakeEmbeddings(size=8))[0].store_plan(
        "u", "s", "what is 2+2", PLAN, "r1"
    )
    bigger = open_plan_stores(context, tmp_path, FakeEmbeddings(size=16))[0]
    bigger.store_plan("u", "s", "what is 3+3", PLAN, "r2")
    assert bigger.lookup("u", "s", "what is 3+3").level == "exact"


@pytest.mark.parametrize(
    "payload", ['{"request": "what is 2+2"}', "[1]", '{"plan": 5, "request": 3}']
)
def test_an_unreadable_entry_is_a_miss_and_is_dropped(tmp_path: Path, payload: str) -> None:
    cache = open_cache(tmp_path)
    cache.store_plan("u", "s", "what is 2+2", PLAN, "r1")
    with sqlite3.connect(tmp_path / "cache.sqlite") as conn:
        conn.execute("UPDATE plan_entries SET payload = ?", [payload])
    conn.close()
    assert cache.lookup("u", "s", "what is 2+2") is None
    assert cache.store.stats()["entries"] == 0


def test_only_plans_that_re_instantiate_get_a_template_key(tmp_path: Path) -> None:
    squared = calc_plan("7 ** 2")
    cache = open_cache(tmp_path)
    cache.store_plan("u", "s", "what is 7 squared", squared, "r1")
    template = read_request("what is 7 squared").template
    assert cache.store.with_template("u", "s", template) == []
