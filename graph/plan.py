"""The plan schema shared by the LLM planner, the pattern planner, the validator and the executor."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_STEPS = 10
"""Plans longer than this are rejected by the validator."""

STEP_REFERENCE = re.compile(r"\{\{\s*step_(\d+)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\}\}")
"""A reference to an earlier step's output: ``{{step_N.field}}`` (or ``{{step_N}}`` for all of it)."""


class PlanStep(BaseModel):
    """One tool call of a plan."""

    model_config = ConfigDict(extra="forbid")

    step_number: int = Field(description="1 for the first step, then 2, 3, ... in order.")
    tool_name: str = Field(description="The name of the tool to call.")
    tool_input: dict[str, Any] = Field(
        description=(
            "The tool's input, following the tool's input schema. A string value "
            "'{{step_N.field}}' is replaced by `field` of step N's output before this step runs."
        )
    )
    reasoning: str = Field(default="", description="One short sentence: why this step.")


class Plan(BaseModel):
    """An ordered list of tool calls that together fulfil the request."""

    model_config = ConfigDict(extra="forbid")

    steps: list[PlanStep] = Field(description="The tool calls, in the order they run.")
    final_goal: str = Field(description="What the user asked for, in one sentence.")


def references(value: Any) -> list[tuple[int, str | None]]:
    """Return every ``(step_number, field)`` referenced anywhere inside a tool input value."""
    found: list[tuple[int, str | None]] = []
    if isinstance(value, str):
        found.extend((int(m.group(1)), m.group(2)) for m in STEP_REFERENCE.finditer(value))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(references(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(references(item))
    return found
