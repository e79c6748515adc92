"""Plan cache: plans of runs that validated and executed, served again only when provably right.

Entries live in a `VectorStore` (rows in SQLite, vectors in FAISS, under the data directory),
partitioned per user and planner signature. A lookup tries three levels in order, each
guarded by `graph.guard` (see its docstring for why a similarity score alone is never enough):

1. exact: the normalized request is a key of the store;
2. template: a cached request with the same masked template, whose plan re-instantiates with
   the new values;
3. semantic: the nearest cached requests by embedding, above `threshold`, whose parameters
   equal the new request's.

The exact and template levels need no embedding, so most repeats cost two indexed SQLite
reads.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from graph.guard import Shape, instantiate, read_request, same_parameters
from graph.plan import Plan

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

    from graph.vector_store import Entry, VectorStore

logger = logging.getLogger(__name__)

CacheLevel = Literal["exact", "template", "semantic"]

SEMANTIC_CANDIDATES = 5
"""Nearest neighbours checked by the semantic level: the closest may differ in a parameter
while a slightly farther paraphrase matches."""

UNEMBEDDED = "unembedded"
"""The vector space of entries stored while the embedder failed: found by exact and template
lookups, never searched."""


@dataclass(frozen=True)
class CacheHit:
    """A cached plan, ready for the new request, and why it may be served."""

    plan: Plan
    level: CacheLevel
    run_id: str
    """The run whose successful execution put the plan in the cache."""

    entry_id: int
    """The entry that served it: evicted if the plan fails this time."""

    cached_request: str
    similarity: float | None
    """Cosine similarity of the two requests (semantic level only)."""

    reason: str
    """One sentence for traces and people: the level and what was checked."""

    def as_dict(self) -> dict[str, Any]:
        """Return the hit's description for the response (without the plan)."""
        return {
            "level": self.level,
            "reason": self.reason,
            "run_id": self.run_id,
            "cached_request": self.cached_request,
            "similarity": self.similarity,
        }


class RequestVectors:
    """Embeds requests for one runtime: the embedder is built on first use, vectors are memoized.

    A run embeds its request once in `cache_lookup` and needs the same vector again when its
    plan is stored and for its examples; the memo saves those calls.
    """

    def __init__(self, make: Callable[[], Embeddings], space: str, memo_size: int = 512):
        """Embed with `make()` (called once, lazily); `space` names the vectors it produces."""
        self.space = space
        self._make = make
        self._embedder: Embeddings | None = None
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, list[float]] = OrderedDict()
        self._memo_size = memo_size

    @property
    def embedder(self) -> Embeddings:
        """Return the embedder, building it on first use."""
        with self._lock:
            if self._embedder is None:
                self._embedder = self._make()
            return self._embedder

    def vector(self, text: str) -> list[float] | None:
        """Return the embedding of `text`, or None when the embedder fails (logged)."""
        with self._lock:
            if text in self._memo:
                self._memo.move_to_end(text)
                return self._memo[text]
        try:
            vector = self.embedder.embed_query(text)
        except Exception as exc:  # any embedder failure only costs the semantic level
            logger.warning("could not embed a request (%s): %s", self.space, exc)
            return None
        with self._lock:
            self._memo[text] = vector
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return vector


def _quoted(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


class PlanCache:
    """The three-level plan cache over one `VectorStore` table."""

    def __init__(self, store: VectorStore, vectors: RequestVectors, threshold: float):
        """Serve entries of `store`; the semantic level needs cosine >= `threshold`."""
        self.store = store
        self.vectors = vectors
        self.threshold = threshold

    def lookup(self, user_id: str, signature: str, request: str) -> CacheHit | None:
        """Return a plan that is right for `request`, or None.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be read (callers treat it
                as a miss).
        """
        shape = read_request(request)
        hit = self._exact(user_id, signature, shape) or self._template(user_id, signature, shape)
        hit = hit or self._semantic(user_id, signature, shape)
        if hit is not None:
            self.store.touch(hit.entry_id)
        return hit

    def _exact(self, user_id: str, signature: str, shape: Shape) -> CacheHit | None:
        entry = self.store.get(user_id, signature, shape.normalized)
        if entry is None:
            return None
        return self._hit(
            entry,
            Plan.model_validate(entry.payload["plan"]),
            "exact",
            None,
            ("exact cache hit: the same request as run " + entry.run_id),
        )

    def _template(self, user_id: str, signature: str, shape: Shape) -> CacheHit | None:
        if not shape.slots:
            return None
        for entry in self.store.with_template(user_id, signature, shape.template):
            cached = read_request(entry.payload["request"])
            plan = instantiate(Plan.model_validate(entry.payload["plan"]), cached, shape)
            if plan is None:
                continue
            values = ", ".join(
                f"{new.surface} for {old.surface}"
                for old, new in zip(cached.slots, shape.slots, strict=True)
                if old.surface != new.surface
            )
            reason = (
                f"template cache hit: {_quoted(entry.payload['request'])} (run {entry.run_id}) "
                f"with {values or 'the same values'}"
            )
            return self._hit(entry, plan, "template", None, reason)
        return None

    def _semantic(self, user_id: str, signature: str, shape: Shape) -> CacheHit | None:
        vector = self.vectors.vector(shape.normalized)
        if vector is None:
            return None
        found = self.store.search(
            user_id, signature, self.vectors.space, vector, SEMANTIC_CANDIDATES
        )
        for entry, score in found:
            if score < self.threshold:
                break
            if same_parameters(read_request(entry.payload["request"]), shape):
                reason = (
                    f"semantic cache hit: {_quoted(entry.payload['request'])} "
                    f"(run {entry.run_id}, similarity {score:.3f} >= {self.threshold:.3f}), "
                    "same parameters"
                )
                plan = Plan.model_validate(entry.payload["plan"])
                return self._hit(entry, plan, "semantic", score, reason)
        return None

    @staticmethod
    def _hit(
        entry: Entry, plan: Plan, level: CacheLevel, similarity: float | None, reason: str
    ) -> CacheHit:
        return CacheHit(
            plan=plan,
            level=level,
            run_id=entry.run_id,
            entry_id=entry.id,
            cached_request=entry.payload["request"],
            similarity=similarity,
            reason=reason,
        )

    def store_plan(
        self, user_id: str, signature: str, request: str, plan: Plan, run_id: str
    ) -> int:
        """Keep `plan`, which validated and executed for `request`; return the entry's id."""
        shape = read_request(request)
        vector = self.vectors.vector(shape.normalized)
        return self.store.put(
            user_id,
            signature,
            shape.normalized,
            template=shape.template if shape.slots else None,
            space=self.vectors.space if vector is not None else UNEMBEDDED,
            vector=vector if vector is not None else [0.0],
            run_id=run_id,
            payload={"request": request, "plan": plan.model_dump()},
        )

    def evict(self, entry_id: int) -> None:
        """Forget an entry whose plan failed validation or execution."""
        self.store.delete(entry_id)
