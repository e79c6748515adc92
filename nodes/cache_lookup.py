"""First node: admit the request, then see what earlier successful runs offer it.

That is a cached plan that is provably right for this request (`graph.cache`), or, on a miss,
the closest past requests and their plans as examples for the LLM planner (`graph.examples`):
both use the same embedding of the request (memoized, so the recorder reuses it too).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from graph.cache import CacheHit
from graph.guard import normalize
from graph.progress import emit
from graph.services import Services
from graph.state import FIRST_NODE, State, run_defaults

logger = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 4000
"""Longer requests are refused: no everyday request needs more, and it bounds every later step."""

MAX_USER_ID_CHARS = 200

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """Drop control characters and replace lone surrogates, which SQLite cannot store as UTF-8."""
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", text))


def admission_error(prompt: Any, user_id: Any) -> str | None:
    """Return why the input cannot be run, as a sentence, or None when it can."""
    if not isinstance(prompt, str):
        return f"The request must be text, not {type(prompt).__name__}."
    if not prompt.strip():
        return "The request is empty. Try e.g. 'what is 8% of 50' or 'add a todo to call mom'."
    if len(prompt) > MAX_PROMPT_CHARS:
        return f"The request is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}."
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > MAX_USER_ID_CHARS:
        return f"user_id must be a non-empty string of at most {MAX_USER_ID_CHARS} characters."
    return None


def cache_lookup(state: State, *, services: Services) -> dict[str, Any]:
    """Admit the request; reuse a plan that is right for it, or gather examples for the LLM."""
    update: dict[str, Any] = run_defaults() | {
        "run_id": str(uuid.uuid4()),
        "started_at": time.time(),
        "path": [FIRST_NODE],
    }
    problem = admission_error(state.prompt, state.user_id)
    if problem:
        return update | {"error": problem, "error_type": "invalid_request"}
    request = clean_text(state.prompt).strip()
    update |= {"request": request, "normalized": normalize(request)}
    hit = _cached_plan(state.user_id, request, services)
    if hit is not None:
        emit("cache_hit", update["run_id"], level=hit.level, reason=hit.reason)
        return update | {
            "plan": hit.plan,
            "plan_source": "cache",
            "route_reason": hit.reason,
            "cache_hit": hit.as_dict(),
            "cache_entry_id": hit.entry_id,
        }
    return update | {"examples": _examples(state.user_id, request, services)}


def _cached_plan(user_id: str, request: str, services: Services) -> CacheHit | None:
    if not services.context.cache_enabled:
        return None
    try:
        return services.cache.lookup(user_id, services.signature, request)
    except (
        Exception
    ) as exc:  # a broken cache (store, embedder, a bug) is a miss, never a failed run
        logger.warning("plan cache lookup failed: %s", exc)
        return None


def _examples(user_id: str, request: str, services: Services) -> list[dict[str, Any]]:
    """Return the examples the LLM planner will see; none offline, where no LLM plans."""
    k = services.context.examples_k
    if not services.models or not services.context.examples_enabled or k == 0:
        return []
    try:
        found = services.examples.similar(user_id, services.signature, request, k)
    except Exception as exc:  # examples only help the LLM: without them it still plans
        logger.warning("could not read dynamic examples: %s", exc)
        return []
    return [
        {"request": e.request, "plan": e.plan, "run_id": e.run_id, "similarity": e.similarity}
        for e in found
    ]
