"""The labeled pairs of tests/cache_pairs.py check themselves against the oracle."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.cache_pairs import NEAR_MISS_CATEGORIES, PAIRS, Pair
from tests.oracle import SEED_TODOS, outcome, same_result, scratch_plan

MIN_PAIRS = 150
MIN_PER_CATEGORY = 5


def _id(pair: Pair) -> str:
    return f"{pair.category}: {pair.cached} / {pair.new}"


def test_enough_pairs_of_both_kinds_and_every_category() -> None:
    assert len(PAIRS) >= MIN_PAIRS
    kinds = Counter(p.kind for p in PAIRS)
    assert set(kinds) == {"paraphrase", "near_miss"}
    assert kinds["paraphrase"] >= 60
    assert kinds["near_miss"] >= 100
    categories = Counter(p.category for p in PAIRS if p.kind == "near_miss")
    assert set(categories) == set(NEAR_MISS_CATEGORIES)
    assert min(categories.values()) >= MIN_PER_CATEGORY


def test_no_duplicate_pairs() -> None:
    seen = Counter((p.cached, p.new) for p in PAIRS)
    assert [pair for pair, n in seen.items() if n > 1] == []
    assert all(p.cached != p.new for p in PAIRS)


def test_every_cached_request_is_planned() -> None:
    assert [p.cached for p in PAIRS if scratch_plan(p.cached) is None] == []


def test_only_negations_are_refused_on_the_new_side() -> None:
    refused = [p for p in PAIRS if scratch_plan(p.new) is None]
    assert all(p.kind == "near_miss" and p.category == "negation" for p in refused), refused


def test_seeded_store_starts_every_run(tmp_path: Path) -> None:
    plan = scratch_plan("show my todos")
    status, answer, todos = outcome(plan, tmp_path / "a")
    assert status == "ok"
    assert [t["text"] for t in answer["todos"]] == list(SEED_TODOS)
    assert todos == tuple((str(n), text, False) for n, text in enumerate(SEED_TODOS, 1))
    assert outcome(None, tmp_path / "b") == ("refused",)
    with pytest.raises(FileExistsError):
        outcome(plan, tmp_path / "a")


def test_outcome_follows_step_references(tmp_path: Path) -> None:
    status, answer, todos = outcome(
        scratch_plan("add a todo to buy eggs then mark it as done"), tmp_path
    )
    new_id = str(len(SEED_TODOS) + 1)
    assert (status, answer) == ("ok", {"id": new_id, "text": "buy eggs", "completed": True})
    assert todos[-1] == (new_id, "buy eggs", True)


def test_a_failed_step_is_a_failed_outcome(tmp_path: Path) -> None:
    status, error, todos = outcome(scratch_plan("delete todo 99"), tmp_path)
    assert status == "failed"
    assert "99" in error
    assert len(todos) == len(SEED_TODOS)


@pytest.mark.parametrize("pair", PAIRS, ids=_id)
def test_label_agrees_with_the_oracle(pair: Pair, tmp_path: Path) -> None:
    served = scratch_plan(pair.cached)
    assert served is not None
    if pair.kind == "paraphrase":
        assert same_result(served, pair.new, tmp_path)
    else:
        assert not same_result(served, pair.new, tmp_path)
