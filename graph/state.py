"""Graph state: what a run starts with, what the nodes share, and what it returns."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Annotated, Any, Literal

from graph.plan import Plan

Complexity = Literal["simple", "moderate", "complex"]
PlanSource = Literal["cache", "llm", "pattern", "fallback"]
LlmErrorType = Literal[
    "rate_limit",  # 429
    "timeout",  # no answer within CRANE_LLM_TIMEOUT_S
    "connection",  # refused, reset, DNS
    "server_error",  # 5xx
    "auth",  # 401, 403
    "not_found",  # 404: unknown model
    "bad_request",  # 400: the endpoint rejected the request
    "context_length",  # 400: the prompt does not fit the model
    "invalid_output",  # truncated JSON, schema mismatch, refusal
    "declined",  # a well-formed answer with no steps: the model found no tool for the request
    "circuit_open",  # the model's breaker is open: not called
    "budget_exhausted",  # the daily budget is spent: not called
    "other",
]
"""Failures of the LLM path; each selects its own edge (see `graph.routing.next_attempt`)."""

ErrorType = Literal[
    LlmErrorType,
    # the run's own outcome
    "invalid_request",
    "unsupported_request",
    "validation_error",
    "tool_error",
]


FIRST_NODE = "cache_lookup"


def extend_path(left: list[str], right: list[str]) -> list[str]:
    """Append the nodes a step visited; a run's path restarts at its first node.

    The restart matters on a checkpointed thread, where state (and so the path) carries over
    from the thread's previous run.
    """
    return list(right) if right[:1] == [FIRST_NODE] else [*left, *right]


def add_node_ms(left: dict[str, float], right: dict[str, float]) -> dict[str, float]:
    """Add a step's milliseconds per node; a run's timings restart at its first node.

    Sums rather than replaces because a node can run several times in one run (`llm_planner`
    on retries and repairs, `validator` after each plan); restarts for the reason `extend_path`
    does.
    """
    if FIRST_NODE in right:
        return dict(right)
    total = dict(left)
    for node, ms in right.items():
        total[node] = round(total.get(node, 0.0) + ms, 3)
    return total


@dataclass(kw_only=True)
class InputState:
    """What a caller passes to `invoke`."""

    prompt: Any = ""
    """The request, in the person's own words. Typed `Any` because callers can pass anything;
    `cache_lookup` turns non-text into a clear failed response instead of a crash."""

    user_id: Any = "default"
    """Whose todos, history and cache this run uses."""


@dataclass(kw_only=True)
class OutputState:
    """What `invoke` returns."""

    response: dict[str, Any] | None = None
    """The run's result, a JSON-serializable dict (see the README's response contract)."""


@dataclass(kw_only=True)
class State(InputState, OutputState):
    """Everything the nodes share during one run."""

    run_id: str = ""
    """A fresh UUID per run, written by `cache_lookup`."""

    started_at: float = 0.0
    """Wall-clock start of the run (seconds since the epoch), for `latency_ms`."""

    request: str = ""
    """The prompt after validation (stripped text); empty when the input was rejected."""

    normalized: str = ""
    """The request folded for exact matching (case, spacing, trailing punctuation)."""

    features: dict[str, Any] = field(default_factory=dict)
    """What `complexity_router` measured: word count, connectors, numbers, pattern coverage, ..."""

    complexity: Complexity | None = None
    """The router's verdict on the request."""

    tier: str | None = None
    """The model tier of the current LLM attempt (`fast`, `smart`, `reasoning`)."""

    next_tier: str | None = None
    """The tier an escalation would use, as available when the last attempt failed."""

    route_reason: str = ""
    """Why the router sent the request where it did, for people reading traces."""

    plan: Plan | None = None
    """The plan under validation or execution."""

    plan_source: PlanSource | None = None
    """Who made `plan`."""

    cache_hit: dict[str, Any] | None = None
    """How a cached plan was found (`level`: exact, template or semantic; `reason`; the `run_id`
    and request it was cached from; `similarity`), or None when the plan was not cached."""

    cache_entry_id: int | None = None
    """The cache entry that served `plan`, evicted if the plan fails this time."""

    examples: list[dict[str, Any]] = field(default_factory=list)
    """Past requests of this user that planned and ran well, closest first (`request`, `plan`,
    `run_id`, `similarity`), shown to the LLM planner."""

    validation_errors: list[str] = field(default_factory=list)
    """What the validator found wrong with `plan`; empty when it is valid."""

    llm_attempts: int = 0
    """How many times the LLM planner has run in this run, over all tiers."""

    attempt: int = 0
    """How many times the LLM planner has run on the current tier."""

    repairs: int = 0
    """How many times an invalid plan was sent back to the current tier with the errors."""

    retries: int = 0
    """How many retries after a timeout, connection error or 5xx the current tier has had."""

    feedback: list[str] = field(default_factory=list)
    """The repair conversation of the current tier (the rejected plan and its problems), resent
    when a repair attempt itself has to be retried."""

    rate_limit_retried: bool = False
    """Whether this run already spent its one retry after a rate limit."""

    retry_after_s: float | None = None
    """The wait before retrying the current tier: the endpoint's `Retry-After` after a 429,
    the jittered backoff after a timeout, connection error or 5xx; None when there is none."""

    llm_wait_s: float = 0.0
    """Total time this run has waited before LLM retries (bounded by CRANE_RETRY_DEADLINE_S)."""

    llm_route: list[str] = field(default_factory=list)
    """Each LLM attempt and its outcome, e.g. `fast: timeout`, `fast: retry after 0.4 s`."""

    llm_error: str | None = None
    """The last LLM failure, as a sentence (kept when the fallback planner takes over)."""

    fallback_reason: str | None = None
    """Why the LLM path gave up, when the rule planner took over from it."""

    model: str | None = None
    """The model of the last LLM attempt (the one that produced the plan, when an LLM did)."""

    tokens: int = 0
    """Tokens spent by the LLM in this run, over all attempts."""

    cost_usd: float = 0.0
    """What those tokens cost, in US dollars."""

    usage: dict[str, dict[str, float]] = field(default_factory=dict)
    """Tokens and cost per model in this run: `{model: {"calls", "input_tokens", "output_tokens",
    "tokens", "cost_usd"}}`."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    """Per-step results written by the executor."""

    answer: Any = None
    """Output of the last step."""

    error: str | None = None
    """Why the run failed, as a sentence for a person."""

    error_type: ErrorType | None = None
    """The class of the failure; the LLM path's types select the edge taken after `llm_planner`."""

    path: Annotated[list[str], extend_path] = field(default_factory=list)
    """The nodes visited, in order; each node appends its own name."""

    node_ms: Annotated[dict[str, float], add_node_ms] = field(default_factory=dict)
    """Milliseconds spent in each node this run, summed over its visits (written by the
    wrapper every node runs in, see `graph.builder.node_runnable`)."""


def run_defaults() -> dict[str, Any]:
    """Return every per-run field at its default: what the first node resets.

    On a checkpointed thread (a checkpointer, or `langgraph dev` with a thread) the previous
    run's state is still there; without this reset its error, plan or steps would leak into
    the next run.
    """
    kept = {f.name for f in fields(InputState)} | {f.name for f in fields(OutputState)} | {"path"}
    return {
        f.name: f.default_factory() if f.default_factory is not MISSING else f.default
        for f in fields(State)
        if f.name not in kept
    }
