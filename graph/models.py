"""Chat models per tier, the structured-output planner runnable, and LLM error classification."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, cast

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
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


def load_chat_model(name: str, context: Context) -> BaseChatModel:
    """Return a `ChatOpenAI` for `name` on the configured endpoint, without SDK retries.

    The graph owns every retry, so each attempt is its own node run in traces. Reasoning models
    reject `temperature` and get none.
    """
    from langchain_openai import ChatOpenAI  # imported here: offline runs never pay for it

    kwargs: dict[str, Any] = {"model": name, "timeout": context.llm_timeout_s, "max_retries": 0}
    if not name.startswith(_REASONING_PREFIXES):
        kwargs["temperature"] = 0
    return ChatOpenAI(**kwargs)


def build_tier_models(
    context: Context, overrides: Mapping[str, BaseChatModel | None]
) -> dict[str, BaseChatModel]:
    """Return the chat model of each tier: injected ones first, then the endpoint's, if configured."""
    models = {tier: m for tier, m in overrides.items() if m is not None}
    if llm_configured():
        for tier in TIERS:
            models.setdefault(tier, load_chat_model(context.model_for(tier), context))
    return models


def model_name(model: BaseChatModel) -> str:
    """Return the model's name as providers report it, or its class name."""
    for attr in ("model_name", "model"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__


def structured_planner(model: BaseChatModel) -> Runnable[Any, dict[str, Any]]:
    """Return `model` bound to emit a `Plan`, with the raw message and parsing error kept.

    OpenAI-compatible endpoints use JSON-schema output; other chat models use tool calling,
    LangChain's default.
    """
    from langchain_openai import ChatOpenAI

    kwargs: dict[str, Any] = {"method": "json_schema"} if isinstance(model, ChatOpenAI) else {}
    # include_raw=True returns {"raw", "parsed", "parsing_error"}, always a dict
    return cast(
        "Runnable[Any, dict[str, Any]]",
        model.with_structured_output(Plan, include_raw=True, **kwargs),
    )


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
    if isinstance(exc, openai.InternalServerError | openai.APIConnectionError):
        return "server_error"
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return "server_error"
    if isinstance(exc, OutputParserException | ValidationError | json.JSONDecodeError):
        return "invalid_output"
    if isinstance(exc, openai.LengthFinishReasonError | openai.ContentFilterFinishReasonError):
        return "invalid_output"
    return "other"


_DESCRIPTIONS: dict[str, str] = {
    "rate_limit": "the model endpoint is rate-limiting requests",
    "timeout": "the model did not answer in time",
    "server_error": "the model endpoint failed or could not be reached",
    "auth": "the model endpoint rejected the API key",
    "invalid_output": "the model returned output that is not a valid plan",
    "other": "the model call failed",
}


def describe_llm_error(error_type: str, exc: BaseException | None = None) -> str:
    """Return a sentence for people about an LLM failure, with the provider's detail when short."""
    text = _DESCRIPTIONS.get(error_type, _DESCRIPTIONS["other"])
    detail = str(exc).strip().splitlines()[0] if exc is not None and str(exc).strip() else ""
    if detail:
        text += f" ({type(exc).__name__}: {detail[:200]})"
    return text
