"""Plan cache: plans of runs that validated and executed, served again only when provably right.

Entries live in a `VectorStore` (rows in SQLite, vectors in FAISS, under the data directory),
partitioned per user and planner signature. A lookup tries three levels in order, each
guarded by `graph.guard` (see its docstring for why a similarity score alone is never enough):

1. exact: the normalized request is a key of the store;
2. template: a cached request with the same masked template, whose plan re-instantiates with
   the new values;
3. semantic: the nearest cached requests by embedding, above `threshold`, whose parameters
   equal the new request's.

The exact and template levels need no embedding, so a repeat costs an indexed SQLite read or
two, and a write that marks the entry as used.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from graph.db import STORAGE_ERRORS
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


EMBED_COOLDOWN_S = 30.0
"""After the embedder fails, requests skip it this long (doubling while it keeps failing, up to
`EMBED_MAX_COOLDOWN_S`): a dead embeddings endpoint must not cost every run its timeout."""

EMBED_MAX_COOLDOWN_S = 600.0


class RequestVectors:
    """Embeds requests for one runtime: the embedder is built on first use, vectors are memoized.

    A run embeds its request in `cache_lookup` and needs the same vector again when its plan is
    stored and for its examples; the memo saves those calls. A failure, or a vector that is not
    a usable one (empty, not finite, of another dimension than before), returns None: the caller
    loses only the semantic level. After a failure the embedder is left alone for a cooldown.
    """

    def __init__(
        self,
        make: Callable[[], Embeddings],
        space: str,
        memo_size: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Embed with `make()` (called once, lazily); `space` names the vectors it produces."""
        self.space = space
        self._make = make
        self._embedder: Embeddings | None = None
        self._lock = threading.Lock()
        self._memo: OrderedDict[str, list[float]] = OrderedDict()
        self._memo_size = memo_size
        self._clock = clock
        self._dim: int | None = None
        self._resume_at = -math.inf
        self._cooldown_s = EMBED_COOLDOWN_S

    @property
    def embedder(self) -> Embeddings:
        """Return the embedder, building it on first use."""
        with self._lock:
            if self._embedder is None:
                self._embedder = self._make()
            return self._embedder

    def space_of(self, vector: list[float]) -> str:
        """Return the vector space of `vector`: the embedder and its dimension.

        With the dimension in it, a model swapped for one of another size starts a new space
        instead of clashing with the stored vectors.
        """
        return f"{self.space}/{len(vector)}"

    def vector(self, text: str) -> list[float] | None:
        """Return the embedding of `text`, or None when there is no usable one (logged)."""
        with self._lock:
            if text in self._memo:
                self._memo.move_to_end(text)
                return self._memo[text]
            if self._clock() < self._resume_at:
                return None
        try:
            vector = [float(x) for x in self.embedder.embed_query(text)]
            problem = self._problem(vector)
        except Exception as exc:  # any embedder failure only costs the semantic level
            problem = f"{type(exc).__name__}: {exc}"
        with self._lock:
            if problem is not None:
                self._resume_at = self._clock() + self._cooldown_s
                logger.warning(
                    "could not embed a request (%s), skipping embeddings for %.0f s: %s",
                    self.space,
                    self._cooldown_s,
                    problem,
                )
                self._cooldown_s = min(self._cooldown_s * 2, EMBED_MAX_COOLDOWN_S)
                return None
            self._cooldown_s = EMBED_COOLDOWN_S
            self._dim = len(vector)
            self._memo[text] = vector
            while len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return vector

    def _problem(self, vector: list[float]) -> str | None:
        if not vector or not all(math.isfinite(x) for x in vector):
            return "the embedder returned an empty or non-finite vector"
        if self._dim is not None and len(vector) != self._dim:
            return f"the embedder returned {len(vector)} dimensions instead of {self._dim}"
        return None


def readable(entry: Entry) -> tuple[str, Plan] | None:
    """Return an entry's request and plan, or None when its payload is not one Crane wrote."""
    try:
        request = entry.payload["request"]
        plan = Plan.model_validate(entry.payload["plan"])
    except (KeyError, TypeError, ValueError):  # pydantic's ValidationError is a ValueError
        return None
    return (request, plan) if isinstance(request, str) else None


def _quoted(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


TEMPLATE_CANDIDATES = 10
"""Most recently used entries tried by the template level: a bounded cost per lookup."""


class PlanCache:
    """The three-level plan cache over one `VectorStore` table."""

    def __init__(self, store: VectorStore, vectors: RequestVectors, threshold: float):
        """Serve entries of `store`; the semantic level needs cosine >= `threshold`."""
        self.store = store
        self.vectors = vectors
        self.threshold = threshold

    def lookup(self, user_id: str, signature: str, request: str) -> CacheHit | None:
        """Return a plan that is right for `request`, or None.

        Entries whose payload Crane cannot read are deleted on the way.

        Raises:
            sqlite3.Error, OSError, ValueError: the store cannot be read (callers treat it
                as a miss).
        """
        shape = read_request(request)
        hit = self._exact(user_id, signature, shape) or self._template(user_id, signature, shape)
        hit = hit or self._semantic(user_id, signature, shape)
        if hit is not None:
            try:
                self.store.touch(hit.entry_id)
            except STORAGE_ERRORS as exc:  # the LRU stamp is bookkeeping: serve the hit anyway
                logger.warning("could not mark a cache hit as used: %s", exc)
        return hit

    def _usable(self, entry: Entry) -> tuple[str, Plan] | None:
        found = readable(entry)
        if found is None:
            logger.warning("dropping unreadable plan cache entry %s", entry.id)
            self.store.delete(entry.id)
        return found

    def _exact(self, user_id: str, signature: str, shape: Shape) -> CacheHit | None:
        entry = self.store.get(user_id, signature, shape.normalized)
        if entry is None or (found := self._usable(entry)) is None:
            return None
        reason = f"exact cache hit: the same request as run {entry.run_id}"
        return self._hit(entry, found, found[1], "exact", None, reason)

    def _template(self, user_id: str, signature: str, shape: Shape) -> CacheHit | None:
        if not shape.slots:
            return None
        for entry in self.store.with_template(
            user_id, signature, shape.template, TEMPLATE_CANDIDATES
        ):
            if (found := self._usable(entry)) is None:
                continue
            cached = read_request(found[0])
            plan = instantiate(found[1], cached, shape)
            if plan is None:
                continue
            values = ", ".join(
                f"{new.surface} for {old.surface}"
                for old, new in zip(cached.slots, shape.slots, strict=True)
                if old.surface != new.surface
            )
            reason = (
                f"template cache hit: {_quoted(found[0])} (run {entry.run_id}) "
                f"with {values or 'the same values'}"
            )
            return self._hit(entry, found, plan, "template", None, reason)
        return None

    def _semantic(self, user_id: str, signature: str, shape: Shape) -> CacheHit | None:
        vector = self.vectors.vector(shape.normalized)
        if vector is None:
            return None
        space = self.vectors.space_of(vector)
        found = self.store.search(user_id, signature, space, vector, SEMANTIC_CANDIDATES)
        for entry, score in found:
            if score < self.threshold:
                break
            usable = self._usable(entry)
            if usable is not None and same_parameters(read_request(usable[0]), shape):
                reason = (
                    f"semantic cache hit: {_quoted(usable[0])} "
                    f"(run {entry.run_id}, similarity {score:.3f} >= {self.threshold:.3f}), "
                    "same parameters"
                )
                return self._hit(entry, usable, usable[1], "semantic", score, reason)
        return None

    @staticmethod
    def _hit(
        entry: Entry,
        found: tuple[str, Plan],
        plan: Plan,
        level: CacheLevel,
        similarity: float | None,
        reason: str,
    ) -> CacheHit:
        return CacheHit(
            plan=plan,
            level=level,
            run_id=entry.run_id,
            entry_id=entry.id,
            cached_request=found[0],
            similarity=similarity,
            reason=reason,
        )

    def store_plan(
        self, user_id: str, signature: str, request: str, plan: Plan, run_id: str
    ) -> int:
        """Keep `plan`, which validated and executed for `request`; return the entry's id.

        The entry gets a template key only if the plan re-instantiates for its own request:
        one that never can (its literals do not trace) would only slow the template level.
        """
        shape = read_request(request)
        templated = bool(shape.slots) and instantiate(plan, shape, shape) is not None
        vector = self.vectors.vector(shape.normalized)
        return self.store.put(
            user_id,
            signature,
            shape.normalized,
            template=shape.template if templated else None,
            space=self.vectors.space_of(vector) if vector is not None else UNEMBEDDED,
            vector=vector if vector is not None else [0.0],
            run_id=run_id,
            payload={"request": request, "plan": plan.model_dump()},
        )

    def evict(self, entry_id: int) -> None:
        """Forget an entry whose plan failed validation or execution."""
        self.store.delete(entry_id)
