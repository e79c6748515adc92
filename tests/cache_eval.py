"""Run the labeled request pairs through the real plan cache: which hit, at what level, and were they right.

Shared by the zero-wrong-hits test and the threshold calibration in `bench/`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from graph.cache import PlanCache
from graph.context import Context
from graph.services import open_plan_stores
from tests.cache_pairs import Pair
from tests.oracle import same_result, scratch_plan

SIGNATURE = "calibration"


@dataclass(frozen=True)
class PairResult:
    pair: Pair
    level: str | None
    """The level that would serve the pair with no similarity threshold (None: a miss)."""
    similarity: float
    """Cosine similarity of the two requests' embeddings."""
    right: bool | None
    """Whether the served plan gives the outcome of planning `new` from scratch (None: no hit)."""

    def hit_at(self, threshold: float) -> bool:
        if self.level in ("exact", "template"):
            return True
        return self.level == "semantic" and self.similarity >= threshold

    def wrong_at(self, threshold: float) -> bool:
        """A hit that is wrong: another outcome, or a near miss served a plan verbatim."""
        if not self.hit_at(threshold):
            return False
        verbatim = self.level in ("exact", "semantic")
        return not self.right or (self.pair.kind == "near_miss" and verbatim)


def open_cache(home: Path, embeddings: str) -> PlanCache:
    """Return a plan cache under `home` that serves any similarity (thresholds are applied later)."""
    context = Context.from_env(home=str(home), embeddings=embeddings, cache_threshold=-1.0)
    cache, _ = open_plan_stores(context, home)
    return cache


def evaluate(pairs: Iterable[Pair], home: Path, embeddings: str = "local") -> list[PairResult]:
    """Cache each pair's `cached` plan (one user per pair, so pairs cannot see each other), then look up `new`."""
    cache = open_cache(home / "cache", embeddings)
    results: list[PairResult] = []
    for index, pair in enumerate(pairs):
        user = f"pair-{index}"
        plan = scratch_plan(pair.cached)
        assert plan is not None, pair.cached
        cache.store_plan(user, SIGNATURE, pair.cached, plan, f"run-{index}")
        hit = cache.lookup(user, SIGNATURE, pair.new)
        a, b = cache.vectors.vector(pair.cached), cache.vectors.vector(pair.new)
        assert a is not None and b is not None
        similarity = sum(x * y for x, y in zip(a, b, strict=True))
        right = None
        if hit is not None:
            right = same_result(hit.plan, pair.new, home / f"run-{index}")
        results.append(PairResult(pair, hit.level if hit else None, similarity, right))
    return results


def unrelated_similarity(cache: PlanCache, pairs: Sequence[Pair]) -> float:
    """Return the highest similarity between a calculator request and a todo request of the set.

    Such requests never mean the same thing: the threshold must stay above them.
    """
    requests = {r for p in pairs for r in (p.cached, p.new)}
    families: dict[str, list[list[float]]] = {"calculator": [], "todo_store": []}
    for request in sorted(requests):
        plan = scratch_plan(request)
        tools = {s.tool_name for s in plan.steps} if plan else set()
        vector = cache.vectors.vector(request)
        if len(tools) == 1 and vector is not None:
            families[tools.pop()].append(vector)
    return max(
        sum(x * y for x, y in zip(a, b, strict=True))
        for a in families["calculator"]
        for b in families["todo_store"]
    )


def calibrate(results: Sequence[PairResult], unrelated: float, margin: float = 0.1) -> float:
    """Return the semantic threshold: no wrong hit on the set, and `margin` above unrelated requests.

    The guard's parameter check is what stops near misses; the threshold is the second line,
    for requests that share parameters by accident (both have none, say) while meaning
    different things, as unrelated requests do.
    """
    candidates = sorted({round(r.similarity, 3) for r in results} | {-1.0, 1.0})
    safe = next(t for t in candidates if not any(r.wrong_at(t) for r in results))
    return round(max(safe, unrelated + margin), 3)


def hit_rate(results: Sequence[PairResult], threshold: float) -> float:
    """Return the share of paraphrases served from the cache at `threshold`."""
    paraphrases = [r for r in results if r.pair.kind == "paraphrase"]
    if not paraphrases:
        return math.nan
    return sum(r.hit_at(threshold) for r in paraphrases) / len(paraphrases)
