"""Runtime settings: serializable knobs, read from keyword overrides, then the environment, then defaults."""

from __future__ import annotations

import os
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from graph.errors import ConfigurationError

EMBEDDINGS = ("local", "openai", "hash")
"""Embedding providers the semantic cache can use."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(kw_only=True)
class Context:
    """Knobs of one Crane runtime; each field's environment variable is in its metadata.

    `Context.from_env(**overrides)` applies the precedence explicit value > environment variable >
    default, and coerces environment strings to the field's type (so `CRANE_LLM_TIMEOUT_S=2.5` is a
    float, not the string the LangGraph templates' `__post_init__` would leave).
    """

    home: str = field(
        default="~/.crane",
        metadata={"env": "CRANE_HOME", "description": "Data directory: todos, history, cache."},
    )
    model_fast: str = field(
        default="gpt-4o-mini",
        metadata={"env": "CRANE_MODEL_FAST", "description": "Model of the `fast` tier."},
    )
    model_smart: str = field(
        default="gpt-4o",
        metadata={"env": "CRANE_MODEL_SMART", "description": "Model of the `smart` tier."},
    )
    model_reasoning: str = field(
        default="o4-mini",
        metadata={"env": "CRANE_MODEL_REASONING", "description": "Model of the `reasoning` tier."},
    )
    llm_timeout_s: float = field(
        default=10.0,
        metadata={"env": "CRANE_LLM_TIMEOUT_S", "description": "Timeout of one LLM call, seconds."},
    )
    embeddings: str = field(
        default="local",
        metadata={"env": "CRANE_EMBEDDINGS", "description": "Embeddings: local, openai or hash."},
    )
    pattern_first: bool = field(
        default=True,
        metadata={
            "env": "CRANE_PATTERN_FIRST",
            "description": "Plan simple requests the rule planner fully understands without the LLM.",
        },
    )
    cache_enabled: bool = field(
        default=True,
        metadata={"env": "CRANE_CACHE", "description": "Reuse plans of earlier successful runs."},
    )

    def __post_init__(self) -> None:
        """Refuse settings that could only fail later, far from their cause."""
        if self.embeddings not in EMBEDDINGS:
            raise ConfigurationError(
                f"embeddings must be one of {', '.join(EMBEDDINGS)} (CRANE_EMBEDDINGS), "
                f"not {self.embeddings!r}"
            )
        if not self.llm_timeout_s > 0:
            raise ConfigurationError(
                f"llm_timeout_s must be positive (CRANE_LLM_TIMEOUT_S), not {self.llm_timeout_s}"
            )

    @property
    def home_path(self) -> Path:
        """Return the data directory with `~` expanded."""
        return Path(self.home).expanduser()

    def model_for(self, tier: str) -> str:
        """Return the model name configured for a tier."""
        name: str = getattr(self, f"model_{tier}")
        return name

    @classmethod
    def from_env(cls, env: typing.Mapping[str, str] | None = None, **overrides: Any) -> Context:
        """Build a Context: explicit `overrides`, then environment variables, then defaults.

        Raises:
            TypeError: an override names no field.
            ConfigurationError: a value cannot be read as its field's type or is out of range.
        """
        env = os.environ if env is None else env
        hints = get_type_hints(cls)
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown Context field(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in overrides:
                values[f.name] = overrides[f.name]
            elif env.get(f.metadata["env"], "").strip():
                # An empty variable counts as unset, as it does for OPENAI_API_KEY.
                values[f.name] = _coerce(env[f.metadata["env"]], hints[f.name], f.metadata["env"])
            elif f.default is not MISSING:
                values[f.name] = f.default
        return cls(**values)


def _coerce(raw: str, hint: Any, name: str) -> Any:
    """Turn an environment string into the field's type, with an error that names the variable."""
    target = hint
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        target = next(a for a in typing.get_args(hint) if a is not type(None))
    try:
        if target is bool:
            lowered = raw.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)
        if target in (int, float):
            return target(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a valid {target.__name__}") from None
    return raw
