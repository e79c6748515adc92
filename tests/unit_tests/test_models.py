from __future__ import annotations

import pytest
from langchain_core.exceptions import OutputParserException

from graph.context import Context
from graph.models import build_tier_models, classify_llm_error, describe_llm_error, load_chat_model
from tests.fakes import OPENAI_ERROR_TYPES, fake_model, openai_error


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        *[(openai_error(kind), error_type) for kind, error_type in OPENAI_ERROR_TYPES],
        (TimeoutError(), "timeout"),
        (ConnectionResetError(), "connection"),
        (OutputParserException("bad json"), "invalid_output"),
        (KeyError("x"), "other"),
    ],
)
def test_classify(exc: BaseException, expected: str) -> None:
    assert classify_llm_error(exc) == expected


def test_describe_is_a_sentence_with_detail() -> None:
    text = describe_llm_error("rate_limit", openai_error("rate_limit"))
    assert text.startswith("the model endpoint is rate-limiting") and "RateLimitError" in text


def test_offline_has_no_models() -> None:
    assert build_tier_models(Context.from_env({}), {}) == {}


def test_injected_models_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake = fake_model()
    models = build_tier_models(Context.from_env({}), {"fast": fake})
    assert models["fast"] is fake and set(models) == {"fast", "smart", "reasoning"}


def test_endpoint_models_have_no_sdk_retries_and_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = load_chat_model("gpt-4o-mini", Context.from_env({"CRANE_LLM_TIMEOUT_S": "3"}))
    assert model.max_retries == 0 and model.request_timeout == 3.0 and model.temperature == 0
    assert load_chat_model("o4-mini", Context.from_env({})).temperature is None


# --- retry_after_seconds, parse_plan_reply, endpoints, rate limiter, model settings ----------

import email.utils  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402
import openai  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage  # noqa: E402

from graph.errors import ConfigurationError  # noqa: E402
from graph.models import (  # noqa: E402
    DEFAULT_ENDPOINT,
    endpoint_of,
    make_rate_limiter,
    parse_plan_reply,
    retry_after_seconds,
)
from graph.plan import Plan  # noqa: E402

_REQUEST = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
_NOW = 1_700_000_000.0


def _rate_limited(headers: dict[str, str]) -> openai.RateLimitError:
    response = httpx.Response(429, request=_REQUEST, headers=headers)
    return openai.RateLimitError("Rate limit reached", response=response, body=None)


def _http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def test_retry_after_ms_wins_over_retry_after() -> None:
    exc = _rate_limited({"retry-after-ms": "1500", "retry-after": "30"})
    assert retry_after_seconds(exc) == pytest.approx(1.5)


def test_retry_after_ms_alone() -> None:
    assert retry_after_seconds(_rate_limited({"retry-after-ms": "250"})) == pytest.approx(0.25)


@pytest.mark.parametrize(("raw", "expected"), [("2", 2.0), ("2.5", 2.5), ("0", 0.0)])
def test_retry_after_seconds_as_float(raw: str, expected: float) -> None:
    assert retry_after_seconds(_rate_limited({"retry-after": raw})) == pytest.approx(expected)


def test_negative_retry_after_is_no_wait() -> None:
    assert retry_after_seconds(_rate_limited({"retry-after": "-5"})) == 0.0


def test_retry_after_http_date_in_the_future() -> None:
    exc = _rate_limited({"retry-after": _http_date(_NOW + 7)})
    assert retry_after_seconds(exc, now=_NOW) == pytest.approx(7.0)


def test_retry_after_http_date_in_the_past_is_no_wait() -> None:
    exc = _rate_limited({"retry-after": _http_date(_NOW - 3600)})
    assert retry_after_seconds(exc, now=_NOW) == 0.0


@pytest.mark.parametrize(
    "headers",
    [
        {"retry-after": "garbage"},
        {"retry-after": ""},
        {"retry-after": "inf"},
        {"retry-after": "-inf"},
        {"retry-after": "nan"},
        {"retry-after": "1e400"},
        {"retry-after-ms": "inf"},
        {"retry-after-ms": "nan"},
        {"retry-after": "Wed, 99 Foo 2015 07:28:00 GMT"},
        {"retry-after": "Wed, 21 Oct 2015 07:28:00 -0000"},  # no timezone: unreadable
        {},
    ],
)
def test_unreadable_retry_after_counts_as_absent(headers: dict[str, str]) -> None:
    assert retry_after_seconds(_rate_limited(headers), now=_NOW) is None


def test_unreadable_retry_after_ms_falls_back_to_retry_after() -> None:
    # The docstring says an unreadable value counts as absent; an absent retry-after-ms lets
    # Retry-After speak, but here "3" is parsed as an HTTP date instead (and so is lost).
    exc = _rate_limited({"retry-after-ms": "soon", "retry-after": "3"})
    assert retry_after_seconds(exc, now=_NOW) == pytest.approx(3.0)


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("no response at all"),
        openai.APITimeoutError(request=_REQUEST),
        openai.APIConnectionError(request=_REQUEST),
        httpx.ConnectError("refused"),
    ],
)
def test_no_response_means_no_retry_after(exc: BaseException) -> None:
    assert retry_after_seconds(exc) is None


_PLAN: dict[str, Any] = {
    "steps": [
        {
            "step_number": 1,
            "tool_name": "calculator",
            "tool_input": {"expression": "15% * 80"},
            "reasoning": "compute it",
        }
    ],
    "final_goal": "Compute 15% of 80.",
}


def _reply(content: str, finish_reason: str | None = "stop", **kwargs: Any) -> AIMessage:
    metadata = {"finish_reason": finish_reason} if finish_reason is not None else {}
    return AIMessage(content=content, response_metadata=metadata, **kwargs)


def test_parse_valid_plan() -> None:
    plan = parse_plan_reply(_reply(json.dumps(_PLAN)))
    assert isinstance(plan, Plan)
    assert plan.final_goal == "Compute 15% of 80."
    assert plan.steps[0].tool_input == {"expression": "15% * 80"}


def test_parse_valid_plan_with_whitespace_and_no_finish_reason() -> None:
    plan = parse_plan_reply(_reply("\n  " + json.dumps(_PLAN) + "  \n", finish_reason=None))
    assert plan.steps[0].tool_name == "calculator"


def test_parse_refusal() -> None:
    message = _reply("", additional_kwargs={"refusal": "I can't help with that."})
    with pytest.raises(OutputParserException, match="refused"):
        parse_plan_reply(message)


def test_refusal_wins_even_with_valid_content() -> None:
    message = _reply(json.dumps(_PLAN), additional_kwargs={"refusal": "no"})
    with pytest.raises(OutputParserException, match="refused"):
        parse_plan_reply(message)


def test_finish_reason_length_is_refused_even_if_the_json_parses() -> None:
    with pytest.raises(OutputParserException, match="cut off"):
        parse_plan_reply(_reply(json.dumps(_PLAN), finish_reason="length"))


def test_finish_reason_content_filter() -> None:
    with pytest.raises(OutputParserException, match="content filter"):
        parse_plan_reply(_reply(json.dumps(_PLAN), finish_reason="content_filter"))


@pytest.mark.parametrize(
    "content",
    [
        "Sure! Here is the plan: first I will compute 15% of 80.",
        "",
        "```json\n" + json.dumps(_PLAN) + "\n```",
        json.dumps(_PLAN) + "\n" + json.dumps(_PLAN),
    ],
)
def test_prose_and_non_json_are_refused(content: str) -> None:
    with pytest.raises(OutputParserException, match="not valid JSON"):
        parse_plan_reply(_reply(content))


@pytest.mark.parametrize("content", [json.dumps([_PLAN]), "[]", "42", '"plan"', "null"])
def test_json_that_is_not_an_object_is_refused(content: str) -> None:
    with pytest.raises(OutputParserException, match="not an object"):
        parse_plan_reply(_reply(content))


@pytest.mark.parametrize("cut", [10, 40, 80, -30, -2, -1])
def test_truncated_json_never_becomes_a_partial_plan(cut: int) -> None:
    text = json.dumps(_PLAN)[:cut]
    # Even when the provider forgot to say finish_reason=length.
    with pytest.raises(OutputParserException):
        parse_plan_reply(_reply(text))


def test_truncated_expression_is_not_repaired() -> None:
    text = '{"steps": [{"step_number": 1, "tool_name": "calculator", "tool_input": {"expression": "15% * 8'
    with pytest.raises(OutputParserException, match="not valid JSON"):
        parse_plan_reply(_reply(text))


def test_extra_key_in_plan_is_refused() -> None:
    with pytest.raises(OutputParserException, match="plan schema"):
        parse_plan_reply(_reply(json.dumps({**_PLAN, "confidence": 0.9})))


def test_extra_key_in_step_is_refused() -> None:
    step = {**_PLAN["steps"][0], "tool": "calculator"}
    with pytest.raises(OutputParserException, match="plan schema"):
        parse_plan_reply(_reply(json.dumps({**_PLAN, "steps": [step]})))


def test_missing_key_is_refused() -> None:
    with pytest.raises(OutputParserException, match="final_goal"):
        parse_plan_reply(_reply(json.dumps({"steps": []})))


@pytest.mark.parametrize("message", [json.dumps(_PLAN), _PLAN, None, 42])
def test_non_message_is_refused(message: Any) -> None:
    with pytest.raises(OutputParserException, match="expected a chat message"):
        parse_plan_reply(message)


def test_any_base_message_is_parsed() -> None:
    assert parse_plan_reply(HumanMessage(content=json.dumps(_PLAN))).final_goal


def _status_error(status: int) -> openai.APIStatusError:
    response = httpx.Response(status, request=_REQUEST)
    return openai.APIStatusError(f"status {status}", response=response, body=None)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            openai.UnprocessableEntityError(
                "Unprocessable", response=httpx.Response(422, request=_REQUEST), body=None
            ),
            "bad_request",
        ),
        (
            openai.UnprocessableEntityError(
                "maximum context length exceeded",
                response=httpx.Response(422, request=_REQUEST),
                body={"code": "context_length_exceeded"},
            ),
            "context_length",
        ),
        (_status_error(408), "timeout"),
        (_status_error(409), "server_error"),
        (_status_error(500), "server_error"),
        (_status_error(503), "server_error"),
        (_status_error(418), "other"),
        (httpx.ConnectError("refused"), "connection"),
        (httpx.ReadTimeout("slow"), "timeout"),
        (json.JSONDecodeError("bad", "x", 0), "invalid_output"),
    ],
)
def test_classify_extra_cases(exc: BaseException, expected: str) -> None:
    assert classify_llm_error(exc) == expected


def test_classify_length_finish_reason_error() -> None:
    try:
        from openai.types.chat import ChatCompletion

        completion = ChatCompletion.model_construct(
            id="x", choices=[], created=0, model="m", object="chat.completion"
        )
        exc = openai.LengthFinishReasonError(completion=completion)
    except Exception as err:  # pragma: no cover - depends on the openai version
        pytest.skip(f"LengthFinishReasonError not constructible: {err}")
    assert classify_llm_error(exc) == "invalid_output"


def test_endpoint_of_chat_openai_with_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import ChatOpenAI

    monkeypatch.setenv("OPENAI_BASE_URL", "http://elsewhere/v1")
    model = ChatOpenAI(model="gpt-4o-mini", base_url="http://127.0.0.1:9/v1/", api_key="sk-test")
    assert endpoint_of(model) == "http://127.0.0.1:9/v1"


def test_endpoint_of_chat_openai_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    from langchain_openai import ChatOpenAI

    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.local/v1/")
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test")
    assert endpoint_of(model) == "http://proxy.local/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    model = ChatOpenAI(model="gpt-4o-mini", api_key="sk-test")
    assert endpoint_of(model) == DEFAULT_ENDPOINT


def test_endpoint_of_fake_model() -> None:
    assert endpoint_of(fake_model()) == "local:FakeChatModel"


def test_no_rate_limiter_without_rps() -> None:
    assert make_rate_limiter(Context.from_env({})) is None


def test_rate_limiter_settings() -> None:
    limiter = make_rate_limiter(Context.from_env({"CRANE_LLM_RPS": "5"}))
    assert limiter is not None
    assert limiter.requests_per_second == 5.0
    assert limiter.max_bucket_size == 5.0
    assert limiter.check_every_n_seconds == pytest.approx(0.1)
    slow = make_rate_limiter(Context.from_env({}, llm_rps=0.5))
    assert slow is not None and slow.max_bucket_size == 1.0


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a test touched the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.usefixtures("no_network")
def test_one_rate_limiter_per_runtime_taken_outside_the_models(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # The limiter is taken by llm_planner before a call's timeout starts, not by the models:
    # a wait for it must never count as the endpoint being slow.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    context = Context.from_env({"CRANE_LLM_RPS": "3"})
    models = build_tier_models(context, {"smart": fake_model()})
    assert all(getattr(m, "rate_limiter", None) is None for m in models.values())
    from tests.fakes import make_services

    services = make_services(tmp_path, models=models, llm_rps=3.0)
    assert services.rate_limiter is not None
    assert services.rate_limiter.requests_per_second == 3.0  # type: ignore[attr-defined]
    assert make_services(tmp_path, models=models).rate_limiter is None


def test_no_models_without_api_key_even_with_rps() -> None:
    assert build_tier_models(Context.from_env({"CRANE_LLM_RPS": "3"}), {}) == {}


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ["o4-mini", "o3", "o3-mini", "gpt-5", "gpt-5-mini"])
def test_reasoning_models_get_no_temperature(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = load_chat_model(name, Context.from_env({"CRANE_LLM_TIMEOUT_S": "4.5"}))
    assert model.temperature is None  # type: ignore[attr-defined]
    assert model.max_retries == 0  # type: ignore[attr-defined]
    assert model.request_timeout == 4.5  # type: ignore[attr-defined]
    assert model.model_name == name  # type: ignore[attr-defined]


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize("name", ["gpt-4o-mini", "gpt-4o", "gpt-4.1"])
def test_chat_models_get_temperature_zero(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = load_chat_model(name, Context.from_env({}, llm_timeout_s=7.0))
    assert model.temperature == 0  # type: ignore[attr-defined]
    assert model.max_retries == 0  # type: ignore[attr-defined]
    assert model.request_timeout == 7.0  # type: ignore[attr-defined]


def test_rate_limiter_context_refuses_zero_rps() -> None:
    with pytest.raises(ConfigurationError, match="CRANE_LLM_RPS"):
        Context.from_env({"CRANE_LLM_RPS": "0"})
