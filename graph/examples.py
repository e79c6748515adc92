"""Dynamic few-shot examples: the person's own earlier requests whose plans validated and ran.

The LLM planner's prompt carries hand-written examples for every tool; these add the closest
past requests of the same user, planned under the same planner signature, so the model sees
how requests like this one were planned when they worked. They are kept in their own
`VectorStore` table (one entry per normalized request, the newest plan wins), each with the
`run_id` it came from.

Poisoning resistance: only runs that completed with an `llm` or `pattern` plan become
examples (never a fallback plan, never a failed run); when a plan taken from a run later fails
as a cached plan, that run stops being an example; `crane history forget RUN_ID` removes one by
hand. Turned off with `CRANE_EXAMPLES=false`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from graph.cache import RequestVectors, readable
from graph.guard import normalize
from graph.plan import Plan
from graph.vector_store import VectorStore

MIN_SIMILARITY = 0.3
"""Past requests less similar than this are unrelated ones (calibrated: unrelated calculator
and todo requests score 0.04-0.10 with the local model, paraphrases 0.48 and above)."""


@dataclass(frozen=True)
class Example:
    """A past request and the plan that worked for it."""

    request: str
    plan: dict[str, Any]
    run_id: str
    similarity: float


class ExampleBank:
    """Successful runs' plans, found by similarity of their requests."""

    def __init__(self, store: VectorStore, vectors: RequestVectors):
        """Keep examples in `store`, embedded by `vectors`."""
        self.store = store
        self.vectors = vectors

    def add(self, user_id: str, signature: str, request: str, plan: Plan, run_id: str) -> None:
        """Keep a completed run's plan as an example (not embeddable now: not kept)."""
        key = normalize(request)
        vector = self.vectors.vector(key)
        if vector is None:
            return
        self.store.put(
            user_id,
            signature,
            key,
            template=None,
            space=self.vectors.space_of(vector),
            vector=vector,
            run_id=run_id,
            payload={"request": request, "plan": plan.model_dump()},
        )

    def similar(self, user_id: str, signature: str, request: str, k: int) -> list[Example]:
        """Return up to `k` distinct examples closest to `request`, best first."""
        vector = self.vectors.vector(normalize(request))
        if vector is None or k <= 0:
            return []
        found = self.store.search(user_id, signature, self.vectors.space_of(vector), vector, k * 3)
        examples: list[Example] = []
        seen: set[str] = set()
        for entry, score in found:
            if score < MIN_SIMILARITY:
                break
            usable = readable(entry)
            if usable is None:
                self.store.delete(entry.id)
                continue
            request_text, plan = usable
            # Requests are unique per key already; two requests with the same plan teach the
            # model the same thing once.
            plan_key = json.dumps([s.model_dump() for s in plan.steps], sort_keys=True)
            if plan_key in seen:
                continue
            seen.add(plan_key)
            examples.append(Example(request_text, plan.model_dump(), entry.run_id, score))
            if len(examples) == k:
                break
        return examples

    def forget(self, run_ids: Iterable[str]) -> int:
        """Stop using these runs as examples; return how many examples went."""
        return self.store.delete_runs(run_ids)
