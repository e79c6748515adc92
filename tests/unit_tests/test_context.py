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
