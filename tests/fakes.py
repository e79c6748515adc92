"""Test doubles: a chat model that replays scripted replies or raises scripted errors."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import httpx
import openai
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from pydantic import Field


def plan_message(plan: dict[str, Any], tokens: int = 50) -> AIMessage:
    """Return the reply of a model answering in the plan JSON schema with `plan`."""
    return AIMessage(
        content=json.dumps(plan),
        usage_metadata={"input_tokens": tokens - 10, "output_tokens": 10, "total_tokens": tokens},
        response_metadata={"finish_reason": "stop"},
    )


class FakeChatModel(GenericFakeChatModel):
    """A `GenericFakeChatModel` that binds tools (as itself) and raises scripted exceptions.

    `messages` is an iterator of replies: a message is returned, an exception is raised.
    Every prompt the model receives is kept in `prompts`.
    """

    prompts: list[list[BaseMessage]] = Field(default_factory=list)
    model_name: str = "fake-model"
    disable_streaming: bool = True

    def bind_tools(
        self, tools: Sequence[Any], **kwargs: Any
    ) -> Runnable[LanguageModelInput, BaseMessage]:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.prompts.append(list(messages))
        item = next(self.messages)
        if isinstance(item, BaseException):
            raise item
        message = AIMessage(content=item) if isinstance(item, str) else item
        return ChatResult(generations=[ChatGeneration(message=message)])


def fake_model(*replies: Any) -> FakeChatModel:
    """Return a fake chat model that answers with `replies` in order."""
    return FakeChatModel(messages=iter(replies))


_REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")


OPENAI_ERROR_TYPES: list[tuple[str, str]] = [
    ("rate_limit", "rate_limit"),
    ("timeout", "timeout"),
    ("server_error", "server_error"),
    ("connection", "connection"),
    ("auth", "auth"),
    ("forbidden", "auth"),
    ("not_found", "not_found"),
    ("bad_request", "bad_request"),
    ("context_length", "context_length"),
]
"""Each kind of `openai_error` and the `error_type` Crane must classify it as."""


def openai_error(kind: str) -> BaseException:
    """Return the exception the openai SDK raises for `kind` of failure."""

    def response(status: int) -> httpx.Response:
        return httpx.Response(status, request=_REQUEST)

    errors: dict[str, BaseException] = {
        "rate_limit": openai.RateLimitError(
            "Rate limit reached", response=response(429), body=None
        ),
        "timeout": openai.APITimeoutError(request=_REQUEST),
        "server_error": openai.InternalServerError(
            "Internal error", response=response(500), body=None
        ),
        "connection": openai.APIConnectionError(request=_REQUEST),
        "auth": openai.AuthenticationError("Incorrect API key", response=response(401), body=None),
        "forbidden": openai.PermissionDeniedError("Forbidden", response=response(403), body=None),
        "bad_request": openai.BadRequestError("Bad request", response=response(400), body=None),
        "not_found": openai.NotFoundError("No such model", response=response(404), body=None),
        "context_length": openai.BadRequestError(
            "This model's maximum context length is 128000 tokens",
            response=response(400),
            body={"code": "context_length_exceeded"},
        ),
    }
    return errors[kind]


class InMemoryHistory:
    """`HistoryStore` in a list, for node tests."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []
        self.breaker_events: list[dict[str, Any]] = []

    def record(self, run: dict[str, Any]) -> None:
        self.runs.append(run)

    def recent(self, user_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        runs = [r for r in reversed(self.runs) if user_id is None or r["user_id"] == user_id]
        return runs[:limit]

    def record_breaker(self, event: dict[str, Any]) -> None:
        self.breaker_events.append(event)

    def breaker_states(self) -> list[dict[str, Any]]:
        last = {(e["endpoint"], e["model"]): e for e in self.breaker_events}
        return [last[k] for k in sorted(last)]

    def get(self, run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.runs if r["run_id"] == run_id), None)

    def forget(self, run_id: str, at: float) -> bool:
        runs = [r for r in self.runs if r["run_id"] == run_id]
        for run in runs:
            run["forgotten_at"] = at
        return bool(runs)

    def cost_since(self, since: float) -> float:
        return sum(r["cost_usd"] for r in self.runs if r["created_at"] >= since)

    def usage_by_model(self, since: float = 0.0) -> dict[str, dict[str, float]]:
        from graph.history import add_usage

        total: dict[str, dict[str, float]] = {}
        for run in self.runs:
            if run["created_at"] >= since:
                add_usage(total, run.get("usage") or {})
        return total


def make_services(
    home: Any, models: dict[str, Any] | None = None, *, seed: int = 0, **settings: Any
) -> Any:
    """Return `Services` with in-memory history and a real todo store and plan cache under `home`.

    The cache embeds with the dependency-free `hash` embedder unless `embeddings=` says otherwise.
    """
    from graph.context import Context
    from graph.services import Services, open_plan_stores
    from tools.registry import build_registry
    from tools.todo_store import TodoStore

    settings.setdefault("embeddings", "hash")
    context = Context.from_env(home=str(home), **settings)
    todos = TodoStore(home / "todos.sqlite")
    cache, examples = open_plan_stores(context, context.home_path)
    return Services(
        context=context,
        tools=build_registry(todos),
        todos=todos,
        history=InMemoryHistory(),
        cache=cache,
        examples=examples,
        models=models or {},
        rng=random.Random(seed),
    )
