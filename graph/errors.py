"""Crane's exception hierarchy; every error carries structured attributes.

```
* AgentError
  + ConfigurationError       a setting (keyword override or environment variable) is invalid
  + CacheError               the plan cache could not be read or written
  + EmbeddingsError          text could not be embedded: model files, package, key or endpoint
  + PlanValidationError      a plan broke the plan schema or a tool's rules
  + StepReferenceError       a `{{step_N.field}}` reference has nothing to point at at run time
  + ModelUnavailableError    no chat model is configured for a tier
  + ToolError                a tool refused its input or failed
    x UnknownToolError       a plan named a tool the registry does not hold
```

Nodes never let these escape: they become `error`/`error_type` fields in state, and the run
ends as a failed response.
"""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[AgentError], args: tuple[Any, ...], state: dict[str, Any]) -> AgentError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class AgentError(Exception):
    """Base of every error Crane raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle without calling `__init__`, whose signature differs per subclass.

        The default rebuilds from `self.args` alone, which fails for these constructors and
        leaves a multiprocessing pool waiting forever for a worker's result.
        """
        return (_rebuild, (type(self), self.args, self.__dict__))


class ConfigurationError(AgentError, ValueError):
    """Raised by `build_graph` when a setting is invalid; the message names the variable."""


class CacheError(AgentError):
    """Raised when the plan cache cannot be read or written."""


class EmbeddingsError(AgentError):
    """Raised when text cannot be embedded; the message says what to install, set or fix.

    Causes: a missing or altered model file, a missing tokenizer, an optional package that is not
    installed, no API key, or a failing embeddings endpoint.
    """


class PlanValidationError(AgentError):
    """Raised when a plan breaks the plan schema or a tool's rules.

    Attributes:
        errors: one sentence per problem found.
    """

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


class StepReferenceError(AgentError):
    """Raised by the executor when a `{{step_N.field}}` reference cannot be resolved."""


class ModelUnavailableError(AgentError):
    """Raised when a chat model is needed for a tier that has none configured."""

    def __init__(self, tier: str) -> None:
        super().__init__(f"no chat model is configured for tier {tier!r}")
        self.tier = tier


class ToolError(AgentError):
    """Raised by a tool that refuses its input or fails; the message is for people.

    Attributes:
        tool: the tool's registry name.
        reason: a short machine-readable reason, e.g. ``division_by_zero``.
    """

    def __init__(self, tool: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.tool = tool
        self.reason = reason


class UnknownToolError(ToolError):
    """Raised when a plan names a tool that the registry does not hold."""

    def __init__(self, tool: str, known: list[str]) -> None:
        super().__init__(
            tool,
            "unknown_tool",
            f"unknown tool {tool!r}; known tools: {', '.join(sorted(known))}",
        )
