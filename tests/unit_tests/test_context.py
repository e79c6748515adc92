from __future__ import annotations

import pytest

from graph.context import Context


def test_defaults() -> None:
    ctx = Context.from_env({})
    assert ctx.home == "~/.crane" and ctx.model_fast == "gpt-4o-mini" and ctx.llm_timeout_s == 10.0
    assert ctx.pattern_first is True


def test_precedence_explicit_then_env_then_default() -> None:
    env = {"CRANE_MODEL_FAST": "env-model", "CRANE_HOME": "/env/home"}
    ctx = Context.from_env(env, home="/explicit")
    assert ctx.home == "/explicit" and ctx.model_fast == "env-model" and ctx.model_smart == "gpt-4o"


def test_env_strings_are_coerced() -> None:
    ctx = Context.from_env(
        {"CRANE_LLM_TIMEOUT_S": "2.5", "CRANE_PATTERN_FIRST": "no", "CRANE_CACHE": "1"}
    )
    assert ctx.llm_timeout_s == 2.5 and ctx.pattern_first is False and ctx.cache_enabled is True


def test_empty_env_counts_as_unset() -> None:
    assert Context.from_env({"CRANE_HOME": "", "CRANE_LLM_TIMEOUT_S": " "}).home == "~/.crane"


@pytest.mark.parametrize(
    ("var", "value"), [("CRANE_LLM_TIMEOUT_S", "soon"), ("CRANE_PATTERN_FIRST", "maybe")]
)
def test_bad_env_value_names_the_variable(var: str, value: str) -> None:
    with pytest.raises(ValueError, match=var):
        Context.from_env({var: value})


def test_unknown_override_is_refused() -> None:
    with pytest.raises(TypeError, match="colour"):
        Context.from_env({}, colour="red")


@pytest.mark.parametrize(
    ("var", "value"), [("CRANE_EMBEDDINGS", "bert"), ("CRANE_LLM_TIMEOUT_S", "0")]
)
def test_invalid_settings_are_refused_early(var: str, value: str) -> None:
    with pytest.raises(ValueError, match=var):
        Context.from_env({var: value})


@pytest.mark.parametrize(
    "value",
    [
        "local",
        "local:/models/mini",
        "openai",
        "openai:text-embedding-3-large",
        "fastembed:m",
        "hash",
    ],
)
def test_embeddings_forms_are_accepted(value: str) -> None:
    assert Context.from_env({"CRANE_EMBEDDINGS": value}).embeddings == value


def test_embeddings_default_is_local() -> None:
    assert Context.from_env({}).embeddings == "local"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("bert", "not a known embeddings provider"),
        ("local:models/mini", "absolute path"),
        ("openai:", "needs a model name"),
        ("fastembed", "needs a model name"),
    ],
)
def test_invalid_embeddings_say_why(value: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match="CRANE_EMBEDDINGS") as caught:
        Context.from_env({"CRANE_EMBEDDINGS": value})
    assert reason in str(caught.value)
    with pytest.raises(ConfigurationError, match=reason):
        Context.from_env({}, embeddings=value)


# --- LLM rate, retry, breaker and budget settings ---------------------------------------------

from graph.errors import ConfigurationError  # noqa: E402


def test_new_fields_defaults() -> None:
    ctx = Context.from_env({})
    assert ctx.llm_rps is None and ctx.budget_usd is None
    assert ctx.retry_after_max_s == 2.0 and ctx.retry_deadline_s == 8.0
    assert ctx.backoff_base_s == 0.5 and ctx.backoff_cap_s == 4.0
    assert ctx.breaker_threshold == 3 and isinstance(ctx.breaker_threshold, int)
    assert ctx.breaker_cooldown_s == 30.0 and ctx.breaker_max_cooldown_s == 600.0
    assert ctx.prices == ""


def test_new_fields_are_read_from_env_and_coerced() -> None:
    ctx = Context.from_env(
        {
            "CRANE_LLM_RPS": "2",
            "CRANE_BUDGET_USD": " 1.25 ",
            "CRANE_BREAKER_THRESHOLD": "5",
            "CRANE_RETRY_AFTER_MAX_S": "3.5",
            "CRANE_BACKOFF_BASE_S": "0.25",
            "CRANE_BACKOFF_CAP_S": "2",
            "CRANE_RETRY_DEADLINE_S": "0",
            "CRANE_BREAKER_COOLDOWN_S": "10",
            "CRANE_BREAKER_MAX_COOLDOWN_S": "10",
            "CRANE_PRICES": '{"m": {"input": 1, "output": 2}}',
        }
    )
    assert ctx.llm_rps == 2.0 and isinstance(ctx.llm_rps, float)
    assert ctx.budget_usd == 1.25 and isinstance(ctx.budget_usd, float)
    assert ctx.breaker_threshold == 5 and isinstance(ctx.breaker_threshold, int)
    assert ctx.retry_after_max_s == 3.5
    assert ctx.backoff_base_s == 0.25 and ctx.backoff_cap_s == 2.0
    assert ctx.retry_deadline_s == 0.0
    assert ctx.breaker_cooldown_s == 10.0 and ctx.breaker_max_cooldown_s == 10.0
    assert ctx.prices == '{"m": {"input": 1, "output": 2}}'


@pytest.mark.parametrize("var", ["CRANE_LLM_RPS", "CRANE_BUDGET_USD"])
def test_empty_optional_float_is_none(var: str) -> None:
    ctx = Context.from_env({var: "  "})
    assert ctx.llm_rps is None and ctx.budget_usd is None


def test_zero_budget_and_zero_retry_after_are_allowed() -> None:
    ctx = Context.from_env({"CRANE_BUDGET_USD": "0", "CRANE_RETRY_AFTER_MAX_S": "0"})
    assert ctx.budget_usd == 0.0 and ctx.retry_after_max_s == 0.0


def test_explicit_overrides_beat_env_for_new_fields() -> None:
    ctx = Context.from_env({"CRANE_BUDGET_USD": "5", "CRANE_LLM_RPS": "2"}, budget_usd=1.0)
    assert ctx.budget_usd == 1.0 and ctx.llm_rps == 2.0


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("CRANE_BUDGET_USD", "-1"),
        ("CRANE_BUDGET_USD", "-0.01"),
        ("CRANE_BUDGET_USD", "nan"),
        ("CRANE_BUDGET_USD", "abc"),
        ("CRANE_LLM_RPS", "0"),
        ("CRANE_LLM_RPS", "-2"),
        ("CRANE_LLM_RPS", "nan"),
        ("CRANE_LLM_RPS", "abc"),
        ("CRANE_BREAKER_THRESHOLD", "0"),
        ("CRANE_BREAKER_THRESHOLD", "-1"),
        ("CRANE_BREAKER_THRESHOLD", "abc"),
        ("CRANE_BREAKER_THRESHOLD", "2.5"),
        ("CRANE_BREAKER_COOLDOWN_S", "0"),
        ("CRANE_BREAKER_MAX_COOLDOWN_S", "29"),
        ("CRANE_BREAKER_MAX_COOLDOWN_S", "nan"),
        ("CRANE_RETRY_AFTER_MAX_S", "-1"),
        ("CRANE_RETRY_AFTER_MAX_S", "abc"),
        ("CRANE_RETRY_DEADLINE_S", "-0.5"),
        ("CRANE_BACKOFF_BASE_S", "0"),
        ("CRANE_BACKOFF_CAP_S", "-1"),
    ],
)
def test_invalid_new_settings_name_the_variable(var: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=var):
        Context.from_env({var: value})


def test_max_cooldown_below_cooldown_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="CRANE_BREAKER_MAX_COOLDOWN_S"):
        Context.from_env({"CRANE_BREAKER_COOLDOWN_S": "60", "CRANE_BREAKER_MAX_COOLDOWN_S": "30"})


@pytest.mark.parametrize(
    ("field", "value", "var"),
    [
        ("budget_usd", -1.0, "CRANE_BUDGET_USD"),
        ("llm_rps", 0.0, "CRANE_LLM_RPS"),
        ("breaker_threshold", 0, "CRANE_BREAKER_THRESHOLD"),
        ("retry_after_max_s", -0.1, "CRANE_RETRY_AFTER_MAX_S"),
    ],
)
def test_invalid_overrides_are_refused_too(field: str, value: object, var: str) -> None:
    with pytest.raises(ConfigurationError, match=var):
        Context.from_env({}, **{field: value})


def test_configuration_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="CRANE_BUDGET_USD"):
        Context.from_env({"CRANE_BUDGET_USD": "-3"})


def test_llm_max_tokens_from_env_and_checked() -> None:
    from graph.context import Context
    from graph.errors import ConfigurationError

    assert Context.from_env({}).llm_max_tokens == 1024
    assert Context.from_env({"CRANE_LLM_MAX_TOKENS": "300"}).llm_max_tokens == 300
    with pytest.raises(ConfigurationError, match="CRANE_LLM_MAX_TOKENS"):
        Context.from_env({"CRANE_LLM_MAX_TOKENS": "0"})
