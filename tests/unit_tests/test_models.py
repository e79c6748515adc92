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
