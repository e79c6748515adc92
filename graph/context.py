"""Runtime settings: serializable knobs, read from keyword overrides, then the environment, then defaults."""

from __future__ import annotations

import os
import types
import typing
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from graph.embeddings import FORMS, check_embeddings_spec
from graph.errors import ConfigurationError

DEFAULT_CACHE_THRESHOLD = 0.65
"""Calibrated on the labeled pairs in `tests/cache_pairs.py` (see `bench/cache_calibration.py`)."""

EMBEDDINGS = FORMS
"""Forms of `CRANE_EMBEDDINGS` values; `check_embeddings_spec` validates one."""

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
    llm_max_tokens: int = field(
        default=1024,
        metadata={
            "env": "CRANE_LLM_MAX_TOKENS",
            "description": "Longest plan a model may write, in tokens (not for reasoning models).",
        },
    )
    llm_rps: float | None = field(
        default=None,
        metadata={
            "env": "CRANE_LLM_RPS",
            "description": "Requests per second to the endpoint, shared by all runs; unset: no limit.",
        },
    )
    retry_after_max_s: float = field(
        default=2.0,
        metadata={
            "env": "CRANE_RETRY_AFTER_MAX_S",
            "description": "Longest Retry-After a rate-limited run waits for (once) before retrying.",
        },
    )
    backoff_base_s: float = field(
        default=0.5,
        metadata={
            "env": "CRANE_BACKOFF_BASE_S",
            "description": "First backoff after a timeout, connection error or 5xx; doubles per retry.",
        },
    )
    backoff_cap_s: float = field(
        default=4.0,
        metadata={"env": "CRANE_BACKOFF_CAP_S", "description": "Longest single backoff, seconds."},
    )
    retry_deadline_s: float = field(
        default=8.0,
        metadata={
            "env": "CRANE_RETRY_DEADLINE_S",
            "description": "Total time one run may wait between LLM retries, seconds.",
        },
    )
    breaker_threshold: int = field(
        default=3,
        metadata={
            "env": "CRANE_BREAKER_THRESHOLD",
            "description": "Consecutive failures that open a model's circuit breaker.",
        },
    )
    breaker_cooldown_s: float = field(
        default=30.0,
        metadata={
            "env": "CRANE_BREAKER_COOLDOWN_S",
            "description": "How long an open breaker skips its model; doubles on repeated opening.",
        },
    )
    breaker_max_cooldown_s: float = field(
        default=600.0,
        metadata={"env": "CRANE_BREAKER_MAX_COOLDOWN_S", "description": "Cap of that cooldown."},
    )
    budget_usd: float | None = field(
        default=None,
        metadata={
            "env": "CRANE_BUDGET_USD",
            "description": "Daily (UTC) LLM budget in US dollars; unset: no budget.",
        },
    )
    prices: str = field(
        default="",
        metadata={
            "env": "CRANE_PRICES",
            "description": 'Extra model prices, JSON {"model": {"input": usd, "output": usd}} per 1M tokens.',
        },
    )
    embeddings: str = field(
        default="local",
        metadata={
            "env": "CRANE_EMBEDDINGS",
            "description": "Embeddings of the semantic cache: local, local:/model-dir, openai, "
            "openai:<model>, fastembed:<model> or hash.",
        },
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
    cache_threshold: float = field(
        default=DEFAULT_CACHE_THRESHOLD,
        metadata={
            "env": "CRANE_CACHE_THRESHOLD",
            "description": "Cosine similarity a semantic cache hit needs (on top of equal parameters).",
        },
    )
    cache_ttl_s: float = field(
        default=30 * 24 * 3600.0,
        metadata={
            "env": "CRANE_CACHE_TTL_S",
            "description": "Age after which a cached plan expires.",
        },
    )
    cache_max_entries: int = field(
        default=10_000,
        metadata={
            "env": "CRANE_CACHE_MAX_ENTRIES",
            "description": "Cached plans kept per user; the least recently used go first.",
        },
    )
    few_shot: bool = field(
        default=True,
        metadata={
            "env": "CRANE_FEW_SHOT",
            "description": "Show the LLM planner the hand-written example plans in its system prompt.",
        },
    )
    examples_enabled: bool = field(
        default=True,
        metadata={
            "env": "CRANE_EXAMPLES",
            "description": "Add similar past requests that worked to the LLM planner's prompt.",
        },
    )
    examples_k: int = field(
        default=3,
        metadata={"env": "CRANE_EXAMPLES_K", "description": "How many such examples, at most."},
    )
    p95_objective_ms: float = field(
        default=2000.0,
        metadata={
            "env": "CRANE_P95_OBJECTIVE_MS",
            "description": "95th-percentile run latency above which `crane stats` alerts, in ms.",
        },
    )

    def __post_init__(self) -> None:
        """Refuse settings that could only fail later, far from their cause."""
        if (problem := check_embeddings_spec(self.embeddings)) is not None:
            raise ConfigurationError(f"embeddings is invalid (CRANE_EMBEDDINGS): {problem}")
        for name in ("llm_timeout_s", "backoff_base_s", "backoff_cap_s", "breaker_cooldown_s"):
            _require(self, name, getattr(self, name) > 0, "positive")
        for name in ("retry_after_max_s", "retry_deadline_s"):
            _require(self, name, getattr(self, name) >= 0, "zero or more")
        _require(self, "breaker_threshold", self.breaker_threshold >= 1, "at least 1")
        _require(self, "llm_max_tokens", self.llm_max_tokens >= 1, "at least 1")
        _require(
            self,
            "breaker_max_cooldown_s",
            self.breaker_max_cooldown_s >= self.breaker_cooldown_s,
            "at least breaker_cooldown_s",
        )
        _require(self, "llm_rps", self.llm_rps is None or self.llm_rps > 0, "positive")
        _require(
            self, "budget_usd", self.budget_usd is None or self.budget_usd >= 0, "zero or more"
        )
        _require(self, "cache_threshold", -1 <= self.cache_threshold <= 1, "between -1 and 1")
        _require(self, "cache_ttl_s", self.cache_ttl_s > 0, "positive")
        _require(self, "cache_max_entries", self.cache_max_entries >= 1, "at least 1")
        _require(self, "examples_k", 0 <= self.examples_k <= 10, "between 0 and 10")
        _require(self, "p95_objective_ms", self.p95_objective_ms > 0, "positive")

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


def _require(context: Context, name: str, ok: bool, what: str) -> None:
    if not ok:
        env = next(f.metadata["env"] for f in fields(context) if f.name == name)
        raise ConfigurationError(f"{name} must be {what} ({env}), not {getattr(context, name)!r}")


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
