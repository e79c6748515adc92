from __future__ import annotations

import pickle

import pytest

from graph.errors import (
    AgentError,
    EmbeddingsError,
    PlanValidationError,
    ToolError,
    UnknownToolError,
)
from tools.calculator import CalculatorError
from tools.todo_store import TodoError


@pytest.mark.parametrize(
    "error",
    [
        ToolError("calculator", "syntax", "Bad."),
        UnknownToolError("abacus", ["calculator"]),
        PlanValidationError(["a", "b"]),
        EmbeddingsError("the embeddings endpoint answered HTTP 500: Scripted error."),
        CalculatorError("division_by_zero", "Division by zero is undefined."),
        TodoError("not_found", "You have no todo with id 7."),
    ],
)
def test_errors_survive_pickling(error: AgentError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and str(copy) == str(error) and copy.__dict__ == error.__dict__
