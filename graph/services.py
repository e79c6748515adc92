"""The long-lived parts of one runtime: stores, tool registry and chat models, built once per graph."""

from __future__ import annotations

import hashlib
import logging
import math
import random
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable

from graph import pattern_planner, plan_schema, prompts
from graph.breaker import BreakerBoard, CircuitBreaker
from graph.cache import PlanCache, RequestVectors
from graph.context import Context
from graph.db import STORAGE_ERRORS
from graph.embeddings import embeddings_id, make_embeddings
from graph.errors import ModelUnavailableError
from graph.examples import ExampleBank
from graph.history import HistoryStore, SqliteHistory
from graph.models import (
    TIERS,
    LoopLocalPlanners,
    ModelFactory,
    endpoint_of,
    make_rate_limiter,
    model_name,
    plan_runnable,
)
from graph.plan_schema import plan_response_format
from graph.pricing import PriceTable
from graph.routing import RetrySettings
from graph.vector_store import VectorStore
from tools.registry import ToolRegistry, build_registry
from tools.todo_store import TodoStore

logger = logging.getLogger(__name__)

BUDGET_LOW_FRACTION = 0.8
"""Share of the daily budget after which only the cheapest tier plans."""

BudgetLevel = Literal["ok", "low", "spent"]

EMBED_TIMEOUT_S = 5.0
"""Longest wait for one embedding from an endpoint (`CRANE_EMBEDDINGS=openai`)."""


def planner_signature(tools: ToolRegistry) -> str:
    """Return a hash of what a plan is made from: tool specs, prompts, plan schema, rules' code.

    Hashing the content rather than trusting hand-bumped version numbers means an edited tool,
    prompt or rule can never be served a plan made under the old one.
    """
    digest = hashlib.sha256(tools.signature().encode())
    digest.update(Path(prompts.__file__).read_bytes())
    digest.update(Path(pattern_planner.__file__).read_bytes())
    # The schema the LLM must answer in decides which plans it can write at all.
    digest.update(Path(plan_schema.__file__).read_bytes())
    return digest.hexdigest()[:16]


def make_breaker_board(context: Context) -> BreakerBoard:
    """Return an empty breaker board with the context's thresholds and cooldowns."""
    return BreakerBoard(
        failure_threshold=context.breaker_threshold,
        cooldown_s=context.breaker_cooldown_s,
        max_cooldown_s=context.breaker_max_cooldown_s,
        # A trial that never reports (its run was cancelled) frees the slot after this.
        trial_timeout_s=context.llm_timeout_s * 2,
    )


def level_of_budget(spent: float, budget: float | None) -> BudgetLevel:
    """Return the budget level of a day's `spent` USD against `budget` (None: no budget)."""
    if budget is None:
        return "ok"
    if spent >= budget:
        return "spent"
    return "low" if spent >= budget * BUDGET_LOW_FRACTION else "ok"


def start_of_day() -> float:
    """Return the timestamp of today's midnight, UTC: when a daily budget starts again."""
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


SPEND_REFRESH_S = 1.0
"""How often the budget re-reads today's recorded spend from history (other processes' runs)."""


class DailySpend:
    """Today's (UTC) LLM spend: what history recorded, plus this process's unrecorded calls.

    History is re-read at most every `SPEND_REFRESH_S`, so a budget check costs no I/O on the
    hot path (it runs on the event loop under `ainvoke`). A call's cost counts as pending from
    the moment it returns; when its run is recorded, it moves from pending to recorded in one
    step, so it is never counted twice or not at all in this process. If the history write
    failed, the cost stays pending: spent money still counts.
    """

    def __init__(
        self, cost_since: Callable[[float], float], clock: Callable[[], float] = time.monotonic
    ):
        """Track the spend `cost_since(timestamp)` reads from history."""
        self._cost_since = cost_since
        self._clock = clock
        self._lock = threading.Lock()
        self._pending = 0.0
        self._recorded = 0.0
        self._day: float | None = None
        self._read_at = -math.inf

    def total(self) -> float:
        """Return today's spend in USD.

        Raises:
            sqlite3.Error, OSError, ValueError: history cannot be read.
        """
        day, now = start_of_day(), self._clock()
        with self._lock:
            fresh = self._day == day and now - self._read_at < SPEND_REFRESH_S
        if not fresh:
            recorded = self._cost_since(day)
            with self._lock:
                self._recorded, self._day, self._read_at = recorded, day, now
        with self._lock:
            return self._recorded + self._pending

    def add(self, cost: float) -> None:
        """Count a call's cost, until its run is recorded."""
        with self._lock:
            self._pending += cost

    def settle(self, cost: float, *, recorded: bool) -> None:
        """Move a finished run's cost from pending to recorded; keep it pending if not recorded."""
        if not recorded:
            return
        with self._lock:
            self._pending = max(0.0, self._pending - cost)
            self._recorded += cost


@dataclass
class Services:
    """What the nodes share across runs of one compiled graph.

    Nodes receive it bound as a keyword argument rather than through `Runtime.context`, because
    LangGraph leaves the context `None` unless each caller passes one, and these objects (SQLite
    stores, chat model clients) are neither per-run nor serializable.
    """

    context: Context
    tools: ToolRegistry
    todos: TodoStore
    history: HistoryStore
    cache: PlanCache
    examples: ExampleBank
    models: dict[str, BaseChatModel] = field(default_factory=dict)
    """Chat model per tier; empty when no LLM is configured (offline)."""

    breakers: BreakerBoard | None = None
    """Circuit breakers per endpoint+model; one board per runtime unless one is passed in."""

    rng: random.Random = field(default_factory=random.Random, repr=False)
    """The source of backoff jitter (seeded in tests)."""

    model_factories: dict[str, ModelFactory] = field(default_factory=dict, repr=False)
    """How the endpoint's tier models were built, to build them again per event loop."""

    loop_planners: LoopLocalPlanners = field(init=False, repr=False)
    """The endpoint's plan runnables per event loop, for `ainvoke`."""

    planners: dict[str, Runnable[Any, Any]] = field(default_factory=dict, init=False, repr=False)
    """Each tier's model bound to the strict plan schema, built once."""

    prices: PriceTable = field(init=False, repr=False)
    """Token prices, the defaults updated from `CRANE_PRICES`."""

    signature: str = field(init=False)
    """What a cached plan must have been made under: tool specs, prompt and rule versions."""

    rate_limiter: BaseRateLimiter | None = field(init=False, repr=False)
    """One limiter for every LLM call of the runtime (`CRANE_LLM_RPS`), taken before a call's
    timeout starts, so waiting for it never counts as the endpoint being slow."""

    spend: DailySpend = field(init=False, repr=False)
    """Today's LLM spend, for the budget."""

    def __post_init__(self) -> None:
        """Bind every tier's model to the plan schema and compute the signature, once."""
        response_format = plan_response_format(self.tools)
        self.planners = {t: plan_runnable(m, response_format) for t, m in self.models.items()}
        self.loop_planners = LoopLocalPlanners(self.model_factories, response_format)
        self.prices = PriceTable.from_json(self.context.prices)
        self.rate_limiter = make_rate_limiter(self.context)
        # Late-bound, so the spend always comes from the history this runtime uses now.
        self.spend = DailySpend(lambda since: self.history.cost_since(since))
        self.signature = planner_signature(self.tools)
        if self.breakers is None:
            self.breakers = make_breaker_board(self.context)
        # Held weakly by the board: a shared board must not keep finished runtimes alive.
        self.breakers.add_listener(weakref.WeakMethod(self._record_transition))

    def _record_transition(self, breaker: CircuitBreaker, old: str, new: str) -> None:
        """Write a breaker's state change to history, where other processes can read it."""
        snapshot = breaker.snapshot()
        # Transitions are rare (a handful per outage), so this short write is allowed to run
        # wherever the breaker was told, the event loop included.
        try:
            self.history.record_breaker(
                {
                    "at": snapshot["changed_at"],
                    "endpoint": breaker.endpoint,
                    "model": breaker.model,
                    "old_state": old,
                    "state": new,
                    "cooldown_s": snapshot["cooldown_s"],
                    "opened_count": snapshot["opened_count"],
                    "last_failure": snapshot["last_failure"],
                }
            )
        except STORAGE_ERRORS as exc:
            logger.warning("could not record a circuit breaker transition: %s", exc)

    @property
    def retry_settings(self) -> RetrySettings:
        """Return the limits of the LLM failure policy."""
        return RetrySettings(
            retry_after_max_s=self.context.retry_after_max_s,
            retry_deadline_s=self.context.retry_deadline_s,
        )

    def planner(self, tier: str) -> Runnable[Any, Any]:
        """Return the plan runnable of `tier`.

        Raises:
            ModelUnavailableError: the tier has no chat model.
        """
        try:
            return self.planners[tier]
        except KeyError:
            raise ModelUnavailableError(tier) from None

    async def aplanner(self, tier: str) -> Runnable[Any, Any]:
        """Return the plan runnable of `tier` for the running event loop.

        Raises:
            ModelUnavailableError: the tier has no chat model.
        """
        return await self.loop_planners.get(tier) or self.planner(tier)

    def tier_model_name(self, tier: str) -> str | None:
        """Return the name of the model serving `tier`, if any."""
        model = self.models.get(tier)
        return model_name(model) if model is not None else None

    def breaker(self, tier: str) -> CircuitBreaker:
        """Return the circuit breaker of the endpoint+model serving `tier`."""
        model = self.models[tier]
        assert self.breakers is not None  # set in __post_init__
        return self.breakers.get(endpoint_of(model), model_name(model))

    def budget_level(self) -> BudgetLevel:
        """Return how much of today's (UTC) budget is spent: `ok`, `low` (cheapest tier only), `spent`.

        When history cannot be read the budget counts as spent: a budget exists to stop
        spending, so not knowing the spend must not allow more of it.
        """
        budget = self.context.budget_usd
        if budget is None:
            return "ok"
        try:
            spent = self.spend.total()
        except STORAGE_ERRORS as exc:
            logger.error("cannot read today's LLM spend, treating the budget as spent: %s", exc)
            return "spent"
        return level_of_budget(spent, budget)

    def budget_problem(self, tier: str) -> str | None:
        """Return why the budget forbids another call on `tier` now, or None."""
        return self._budget_reason(tier, self.budget_level())

    def _budget_reason(self, tier: str, budget: BudgetLevel) -> str | None:
        if budget == "spent":
            return f"{tier}: daily budget spent"
        if budget == "low" and tier != next(t for t in TIERS if t in self.models):
            return f"{tier}: daily budget nearly spent, cheapest tier only"
        return None

    def tier_problem(self, tier: str, budget: BudgetLevel) -> str | None:
        """Return why `tier` cannot plan now (no model, budget, open breaker), or None if it can."""
        if tier not in self.models:
            return f"{tier}: no model"
        reason = self._budget_reason(tier, budget)
        if reason is not None:
            return reason
        breaker = self.breaker(tier)
        if not breaker.available():
            snapshot = breaker.snapshot()
            return (
                f"{tier}: circuit open for {snapshot['model']} "
                f"(retry in {snapshot['retry_in_s']:.0f} s)"
            )
        return None

    def choose_tier(self, preferred: str) -> tuple[str | None, list[str]]:
        """Return the first tier able to plan, from `preferred` upwards then downwards.

        Also returns why each tier before it was skipped.
        """
        budget = self.budget_level()
        start = TIERS.index(preferred)
        order = [*TIERS[start:], *reversed(TIERS[:start])]
        skipped: list[str] = []
        for tier in order:
            problem = self.tier_problem(tier, budget)
            if problem is None:
                return tier, skipped
            if tier in self.models:
                skipped.append(problem)
        return None, skipped

    def escalation_tier(self, current: str) -> str | None:
        """Return the next tier up that can plan and runs a different model than `current`."""
        budget = self.budget_level()
        current_model = self._model_key(current) if current in self.models else None
        for tier in TIERS[TIERS.index(current) + 1 :]:
            if tier in self.models and self._model_key(tier) != current_model:
                if self.tier_problem(tier, budget) is None:
                    return tier
        return None

    def _model_key(self, tier: str) -> tuple[str, str]:
        model = self.models[tier]
        return endpoint_of(model), model_name(model)

    @classmethod
    def create(
        cls,
        context: Context,
        models: dict[str, BaseChatModel],
        breakers: BreakerBoard | None = None,
        model_factories: dict[str, ModelFactory] | None = None,
        embeddings: Embeddings | None = None,
    ) -> Services:
        """Open the stores under the context's data directory.

        `embeddings` replaces the one `CRANE_EMBEDDINGS` names (it is built on first use).
        """
        home = context.home_path
        todos = TodoStore(home / "todos.sqlite")
        cache, examples = open_plan_stores(context, home, embeddings)
        return cls(
            context=context,
            tools=build_registry(todos),
            todos=todos,
            history=SqliteHistory(home / "history.sqlite"),
            cache=cache,
            examples=examples,
            models=models,
            breakers=breakers,
            model_factories=model_factories or {},
        )


def request_vectors(context: Context, embeddings: Embeddings | None = None) -> RequestVectors:
    """Return the runtime's request embedder: `embeddings` if given, else `CRANE_EMBEDDINGS`."""
    if embeddings is not None:
        given = embeddings
        name = getattr(embeddings, "model", None) or getattr(embeddings, "model_name", None)
        space = f"custom:{type(embeddings).__name__}" + (f":{name}" if name else "")
        return RequestVectors(lambda: given, space)
    spec = context.embeddings
    # A lookup waits for its embedding, so an endpoint gets less time than a planning call.
    timeout_s = min(context.llm_timeout_s, EMBED_TIMEOUT_S)
    return RequestVectors(lambda: make_embeddings(spec, timeout_s=timeout_s), embeddings_id(spec))


def open_plan_stores(
    context: Context, home: Path, embeddings: Embeddings | None = None
) -> tuple[PlanCache, ExampleBank]:
    """Return the plan cache and the example bank under `home`, sharing one embedder."""
    vectors = request_vectors(context, embeddings)
    path, index_dir = home / "cache.sqlite", home / "cache-index"
    plans = VectorStore(
        path,
        index_dir,
        table="plan_entries",
        ttl_s=context.cache_ttl_s,
        max_entries=context.cache_max_entries,
    )
    # Examples share the cap but not the TTL: a plan that worked stays a good example.
    examples = VectorStore(path, index_dir, table="examples", max_entries=context.cache_max_entries)
    return PlanCache(plans, vectors, context.cache_threshold), ExampleBank(examples, vectors)
