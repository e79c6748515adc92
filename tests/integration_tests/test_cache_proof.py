"""The labeled pairs through the real cache and the real offline embedder: zero wrong hits."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.context import DEFAULT_CACHE_THRESHOLD
from tests.cache_eval import PairResult, calibrate, evaluate, open_cache, unrelated_similarity
from tests.cache_pairs import PAIRS


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> list[PairResult]:
    return evaluate(PAIRS, tmp_path_factory.mktemp("pairs"), "local")


def describe(rows: list[PairResult]) -> list[tuple[str, str, str | None, float]]:
    return [(r.pair.cached, r.pair.new, r.level, round(r.similarity, 3)) for r in rows]


def test_no_wrong_hit_at_the_configured_threshold(results: list[PairResult]) -> None:
    wrong = [r for r in results if r.wrong_at(DEFAULT_CACHE_THRESHOLD)]
    assert wrong == [], describe(wrong)


def test_no_wrong_hit_even_without_a_threshold(results: list[PairResult]) -> None:
    """The parameter guard alone holds: the threshold is a second line of defense."""
    wrong = [r for r in results if r.wrong_at(-1.0)]
    assert wrong == [], describe(wrong)


def test_near_misses_are_never_served_a_plan_verbatim(results: list[PairResult]) -> None:
    verbatim = [
        r for r in results if r.pair.kind == "near_miss" and r.level in ("exact", "semantic")
    ]
    assert verbatim == [], describe(verbatim)


def test_every_served_plan_gives_the_answer_of_planning_from_scratch(
    results: list[PairResult],
) -> None:
    served = [r for r in results if r.level is not None]
    assert served, "nothing was served: the cache is not being exercised"
    assert all(r.right for r in served), describe([r for r in served if not r.right])
    # Both kinds of pairs are served: paraphrases verbatim, near misses only re-instantiated.
    assert {r.level for r in served if r.pair.kind == "paraphrase"} >= {"semantic"}
    assert {r.level for r in served if r.pair.kind == "near_miss"} == {"template"}


def test_the_configured_threshold_is_at_least_the_calibrated_one(
    results: list[PairResult], tmp_path: Path
) -> None:
    unrelated = unrelated_similarity(open_cache(tmp_path, "local"), PAIRS)
    assert DEFAULT_CACHE_THRESHOLD >= calibrate(results, unrelated) - 0.005
