"""The one tool registry shared by the validator, the executor and the planner prompt."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ValidationError

from graph.errors import ToolError, UnknownToolError
from graph.plan import STEP_REFERENCE
from tools.calculator import calculator, parse_expression
from tools.todo_store import TodoStore, make_todo_tool, parse_todo_id

InputCheck = Callable[[dict[str, Any]], list[str]]
"""A tool's own rules beyond its schema; returns one sentence per problem."""

_REFERENCE_PLACEHOLDER = "1"
"""Stands in for `{{step_N...}}` when an input is checked before the earlier step has run."""


def _check_calculator(tool_input: dict[str, Any]) -> list[str]:
    expression = tool_input.get("expression")
    if not isinstance(expression, str):
        return []  # the schema check reports the type
    try:
        parse_expression(STEP_REFERENCE.sub(_REFERENCE_PLACEHOLDER, expression))
    except ToolError as exc:
        return [str(exc)]
    return []


_ID_FIELDS = (None, "id", "result", "value", "output")
"""Fields of an earlier step's output that can hold a todo id (a todo's id, or a number)."""


def _is_id_reference(value: Any) -> bool:
    """Return whether `value` is exactly one reference to an earlier step's id or number."""
    match = STEP_REFERENCE.fullmatch(value.strip()) if isinstance(value, str) else None
    return match is not None and match.group(2) in _ID_FIELDS


def _check_todo(tool_input: dict[str, Any]) -> list[str]:
    action = tool_input.get("action")
    text, todo_id = tool_input.get("text"), tool_input.get("todo_id")
    if action == "add" and not (isinstance(text, str) and text.strip()):
        return ["action 'add' needs a non-empty 'text'"]
    if action in ("get", "complete", "delete") and not (text or todo_id):
        return [f"action {action!r} needs 'todo_id' or 'text'"]
    if todo_id is not None and not _is_id_reference(todo_id):
        # Caught here, a todo named by words in todo_id is repaired before anything runs,
        # instead of failing the run in the tool.
        try:
            parse_todo_id(todo_id)
        except ToolError as exc:
            return [f"{exc} To name a todo by its words, put them in 'text' and todo_id null."]
    return []


_CHECKS: dict[str, InputCheck] = {"calculator": _check_calculator, "todo_store": _check_todo}


class ToolRegistry:
    """Tools by name, with the input schema an LLM sees and the arguments Crane injects."""

    def __init__(self, tools: Iterable[BaseTool], checks: Mapping[str, InputCheck] | None = None):
        """Register `tools`; `checks` adds per-tool rules beyond the input schema."""
        self._tools = {t.name: t for t in tools}
        self._checks = dict(_CHECKS if checks is None else checks)

    @property
    def names(self) -> list[str]:
        """Return the registered tool names, sorted."""
        return sorted(self._tools)

    def get(self, name: str) -> BaseTool:
        """Return the tool called `name`.

        Raises:
            UnknownToolError: no such tool.
        """
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(name, self.names) from None

    def visible_schema(self, name: str) -> type[BaseModel]:
        """Return the input model the LLM sees (injected arguments removed)."""
        schema = self.get(name).tool_call_schema
        assert isinstance(schema, type) and issubclass(schema, BaseModel)
        return schema

    def injected_args(self, name: str) -> set[str]:
        """Return the arguments Crane fills in itself, hidden from the LLM (e.g. `user_id`)."""
        full = self.get(name).args_schema
        assert isinstance(full, type) and issubclass(full, BaseModel)
        return set(full.model_fields) - set(self.visible_schema(name).model_fields)

    def check_input(self, name: str, tool_input: Any) -> list[str]:
        """Return the problems of `tool_input` for tool `name`; empty when it is acceptable."""
        if not isinstance(tool_input, dict):
            return [f"tool_input must be an object, got {type(tool_input).__name__}"]
        extra = sorted(set(tool_input) - set(self.visible_schema(name).model_fields))
        if extra:
            return [f"unknown argument(s) for {name}: {', '.join(extra)}"]
        full = self.get(name).args_schema
        assert isinstance(full, type) and issubclass(full, BaseModel)
        try:
            # The tool's own schema, not the LLM-facing copy: that copy drops model config such
            # as coercing a numeric todo_id to a string, which the tool itself accepts.
            full.model_validate(tool_input)
        except ValidationError as exc:
            return [
                f"{name}.{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}"
                for err in exc.errors()
            ]
        check = self._checks.get(name)
        return check(tool_input) if check else []

    def specs(self) -> list[dict[str, Any]]:
        """Return name, description and LLM-visible JSON schema of every tool."""
        return [
            {
                "name": name,
                "description": self._tools[name].description,
                "input_schema": self.visible_schema(name).model_json_schema(),
            }
            for name in self.names
        ]

    def signature(self) -> str:
        """Return a short hash of every tool's specification; it changes when any tool does."""
        blob = json.dumps(self.specs(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def build_registry(todo_store: TodoStore) -> ToolRegistry:
    """Return the registry of Crane's tools, the todo tool bound to `todo_store`."""
    return ToolRegistry([calculator, make_todo_tool(todo_store)])
