"""Chat models per tier, the structured-output planner runnable, and LLM error classification."""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import os
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_core.runnables import Runnable
from pydantic import ValidationError

from graph.context import Context
from graph.plan import Plan
from graph.state import LlmErrorType

TIERS: tuple[str, ...] = ("fast", "smart", "reasoning")
"""Model tiers, cheapest first."""

COMPLEXITY_TIER: dict[str, str] = {"simple": "fast", "moderate": "fast", "complex": "smart"}
"""Which tier plans a request of each complexity."""

_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def llm_configured(env: Mapping[str, str] | None = None) -> bool:
    """Return whether an OpenAI-compatible endpoint is configured (a non-empty `OPENAI_API_KEY`)."""
    env = os.environ if env is None else env
    return bool(env.get("OPENAI_API_KEY", "").strip())


def load_chat_model(
    name: str,
    context: Context,
    http_async_client: Any = None,
) -> BaseChatModel:
    """Return a `ChatOpenAI` for `name` on the configured endpoint, without SDK retries.

    The graph owns every retry, so each attempt is its own node run in traces. Reasoning models
    reject `temperature` and get none, and no token cap. The endpoint and key come from `OPENAI_BASE_URL` and
    `OPENAI_API_KEY`, as the OpenAI SDK reads them.
    """
    from langchain_openai import ChatOpenAI  # imported here: offline runs never pay for it

    kwargs: dict[str, Any] = {"model": name, "timeout": context.llm_timeout_s, "max_retries": 0}
    if not name.startswith(_REASONING_PREFIXES):
        kwargs["temperature"] = 0
        # A plan of 10 steps is a few hundred tokens; the cap stops a runaway generation early
        # (a cut-off reply is invalid output and gets repaired). Reasoning models spend this
        # budget on thinking too, so they keep the endpoint's own limit.
        kwargs["max_tokens"] = context.llm_max_tokens
    if http_async_client is not None:
        kwargs["http_async_client"] = http_async_client
    return ChatOpenAI(**kwargs)


def make_rate_limiter(context: Context) -> InMemoryRateLimiter | None:
    """Return the one limiter every LLM call of a runtime takes, when `CRANE_LLM_RPS` is set.

    The bucket starts empty (langchain-core's choice): the first call waits `1 / rps`.
    """
    if context.llm_rps is None:
        return None
    # Up to one second's worth of unused requests accumulate, so a quiet endpoint absorbs a
    # short burst.
    return InMemoryRateLimiter(
        requests_per_second=context.llm_rps,
        check_every_n_seconds=min(0.1, 1 / context.llm_rps),
        max_bucket_size=max(1.0, context.llm_rps),
    )


ModelFactory = Callable[..., BaseChatModel]
"""Builds a tier's endpoint model; accepts `http_async_client=` for a per-loop connection pool."""


def endpoint_model_factories(
    context: Context, overrides: Mapping[str, BaseChatModel | None]
) -> dict[str, ModelFactory]:
    """Return a model factory per tier the endpoint serves (none offline or when injected)."""
    if not llm_configured():
        return {}
    return {
        tier: functools.partial(load_chat_model, context.model_for(tier), context)
        for tier in TIERS
        if overrides.get(tier) is None
    }


def build_tier_models(
    context: Context,
    overrides: Mapping[str, BaseChatModel | None],
    factories: Mapping[str, ModelFactory] | None = None,
) -> dict[str, BaseChatModel]:
    """Return the chat model of each tier: injected ones first, then the endpoint's, if configured.

    The endpoint's models are built once per runtime.
    """
    if factories is None:
        factories = endpoint_model_factories(context, overrides)
    models = {tier: m for tier, m in overrides.items() if m is not None}
    for tier, factory in factories.items():
        models.setdefault(tier, factory())
    return models


class LoopLocalPlanners:
    """The endpoint's plan runnables per running event loop, each loop with its own HTTP pool.

    langchain-openai shares one async HTTP client per process, and its pooled connections die
    with the event loop that opened them: a second `asyncio.run(app.ainvoke(...))` would fail
    with "Event loop is closed". Each loop gets its own client here, closed when the loop
    shuts its async generators down (as `asyncio.run` does), so no connection outlives it.
    """

    def __init__(self, factories: Mapping[str, ModelFactory], response_format: dict[str, Any]):
        """Build planners from `factories` on demand, bound to `response_format`."""
        self._factories = dict(factories)
        self._response_format = response_format
        # Weak keys: a loop that is gone takes its planners with it. Nothing stored here may
        # refer to the loop, or the entry would keep its own key alive.
        self._loops: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str, Runnable[Any, Any]]
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    async def get(self, tier: str) -> Runnable[Any, Any] | None:
        """Return this loop's planner for `tier`, or None when the tier has no factory."""
        factory = self._factories.get(tier)
        if factory is None:
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            planners = self._loops.get(loop)
            client = None
            if planners is None:
                import openai

                client = openai.DefaultAsyncHttpxClient()
                planners = self._loops[loop] = {
                    t: plan_runnable(f(http_async_client=client), self._response_format)
                    for t, f in self._factories.items()
                }
        if client is not None:
            await _close_with_loop(loop, client)
        return planners[tier]


async def _close_with_loop(loop: asyncio.AbstractEventLoop, client: Any) -> None:
    """Close `client` when `loop` shuts down its async generators.

    The generator that does it refers to its loop (through the loop's finalizer hook), so the
    loop itself keeps it: a cycle the garbage collector frees with the loop, where any other
    owner would keep the loop alive forever.
    """
    closer = _close_at_loop_shutdown(client)
    try:
        loop._crane_http_closer = closer  # type: ignore[attr-defined]
    except AttributeError:  # a loop without a __dict__ (uvloop): it lives as long as its server
        _UNOWNED_CLOSERS.append(closer)
    await anext(closer)  # registers the generator with the loop's shutdown


_UNOWNED_CLOSERS: list[AsyncIterator[None]] = []


async def _close_at_loop_shutdown(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await client.aclose()


def model_name(model: BaseChatModel) -> str:
    """Return the model's name as providers report it, or its class name."""
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def endpoint_of(model: BaseChatModel) -> str:
    """Return the base URL a chat model calls (the circuit breaker's key with the model name)."""
    base = getattr(model, "openai_api_base", None)
    if isinstance(base, str) and base:
        return base.rstrip("/")
    if isinstance(model, _openai_chat_class()):
        return os.environ.get("OPENAI_BASE_URL", "").rstrip("/") or DEFAULT_ENDPOINT
    return f"local:{type(model).__name__}"


DEFAULT_ENDPOINT = "https://api.openai.com/v1"


def _openai_chat_class() -> type:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI


def plan_runnable(model: BaseChatModel, response_format: dict[str, Any]) -> Runnable[Any, Any]:
    """Return `model` bound to answer in the strict plan JSON schema.

    The reply is parsed by `parse_plan_reply`, not by `with_structured_output`'s parser: that
    parser repairs truncated JSON (`{"expression": "15% * 8` becomes a complete plan), which
    would turn a cut-off reply into a wrong answer.
    """
    return model.bind(response_format=response_format)


def parse_plan_reply(message: Any) -> Plan:
    """Return the plan in a model's reply, strictly.

    Raises:
        OutputParserException: the model refused, the reply was cut off, is not exactly one
            JSON object, or does not match the plan schema.
    """
    if not isinstance(message, BaseMessage):
        raise OutputParserException(f"expected a chat message, got {type(message).__name__}")
    refusal = message.additional_kwargs.get("refusal")
    if refusal:
        raise OutputParserException(f"the model refused: {str(refusal)[:200]}")
    finish = message.response_metadata.get("finish_reason")
    if finish == "length":
        raise OutputParserException("the reply was cut off at the token limit (truncated JSON)")
    if finish == "content_filter":
        raise OutputParserException("the reply was stopped by a content filter")
    text = message.text.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OutputParserException(
            f"the reply is not valid JSON ({exc.msg} at character {exc.pos}): {text[:120]!r}"
        ) from None
    if not isinstance(data, dict):
        raise OutputParserException(f"the reply is JSON {type(data).__name__}, not an object")
    try:
        return Plan.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'plan'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        raise OutputParserException(
            f"the reply does not match the plan schema: {problems}"
        ) from None


def classify_llm_error(exc: BaseException) -> LlmErrorType:
    """Map an exception from a chat model call to the error type that selects the next edge."""
    import httpx
    import openai

    if isinstance(exc, openai.RateLimitError):
        return "rate_limit"
    if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
        return "timeout"
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return "auth"
    if isinstance(exc, openai.NotFoundError):
        return "not_found"
    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        return "context_length" if _is_context_length(exc) else "bad_request"
    if isinstance(exc, openai.APIConnectionError | httpx.TransportError | ConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code == 409:
            return "server_error"
        if exc.status_code == 408:
            return "timeout"
        return "other"
    if isinstance(exc, OutputParserException | ValidationError | json.JSONDecodeError):
        return "invalid_output"
    if isinstance(exc, openai.LengthFinishReasonError | openai.ContentFilterFinishReasonError):
        return "invalid_output"
    return "other"


def _is_context_length(exc: BaseException) -> bool:
    code = getattr(exc, "code", None)
    text = str(exc).lower()
    return code == "context_length_exceeded" or "context length" in text or "context_length" in text


def retry_after_seconds(exc: BaseException, now: float | None = None) -> float | None:
    """Return the wait an HTTP error asks for (`retry-after-ms` or `Retry-After`), if any.

    `Retry-After` may be seconds or an HTTP date; an unreadable or non-finite value counts as
    absent, and a date in the past as no wait.
    """
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    seconds = _float_or_none(headers.get("retry-after-ms"))
    if seconds is not None:
        seconds /= 1000
    else:
        raw = headers.get("retry-after")
        seconds = _float_or_none(raw)
        if seconds is None:
            seconds = _http_date_delay(raw, now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _float_or_none(raw: str | None) -> float | None:
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _http_date_delay(raw: str | None, now: float | None) -> float | None:
    if raw is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return when.timestamp() - (time.time() if now is None else now)


def failed_call_usage(exc: BaseException) -> tuple[int, int]:
    """Return the tokens a failed call still spent: a reply cut off at the limit reports them."""
    usage = getattr(getattr(exc, "completion", None), "usage", None)
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0) or 0), int(
        getattr(usage, "completion_tokens", 0) or 0
    )


_DESCRIPTIONS: dict[str, str] = {
    "rate_limit": "the model endpoint is rate-limiting requests",
    "timeout": "the model did not answer in time",
    "connection": "the model endpoint could not be reached",
    "server_error": "the model endpoint failed",
    "auth": "the model endpoint rejected the API key",
    "not_found": "the model endpoint does not know this model",
    "bad_request": "the model endpoint rejected the request",
    "context_length": "the request does not fit the model's context window",
    "invalid_output": "the model returned output that is not a valid plan",
    "declined": "the model found no tool for this request",
    "circuit_open": "the model is paused after repeated failures (circuit breaker open)",
    "budget_exhausted": "the daily LLM budget is spent (CRANE_BUDGET_USD)",
    "other": "the model call failed",
}


def describe_llm_error(error_type: str, exc: BaseException | None = None) -> str:
    """Return a sentence for people about an LLM failure, with the provider's detail when short."""
    text = _DESCRIPTIONS.get(error_type, _DESCRIPTIONS["other"])
    detail = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    if detail:
        text += f" ({type(exc).__name__}: {detail[:200]})"
    return text
