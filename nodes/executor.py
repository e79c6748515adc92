"""Run the validated plan's steps in order through the tool registry, stopping at the first failure."""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError

from graph.errors import StepReferenceError, ToolError
from graph.plan import STEP_REFERENCE, PlanStep
from graph.progress import emit
from graph.services import Services
from graph.state import State

logger = logging.getLogger(__name__)

_SCALAR_FIELDS = (None, "result", "value", "output")
"""Field names that mean "the whole output" when a step's output is a plain value."""


def _lookup(outputs: dict[int, Any], step: int, field: str | None) -> Any:
    if step not in outputs:
        raise StepReferenceError(f"step {step} has no output to refer to")
    output = outputs[step]
    if isinstance(output, dict) and field is not None:
        if field not in output:
            raise StepReferenceError(f"step {step}'s output has no field {field!r}")
        return output[field]
    if field in _SCALAR_FIELDS:
        return output
    raise StepReferenceError(
        f"step {step}'s output is {type(output).__name__}, not an object with {field!r}"
    )


def _as_text(value: Any) -> str:
    """Return a referenced value as it must read inside a longer string."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        return f"({value})"  # "{{step_1.result}} ** 2" with -5 must mean (-5) ** 2, not -(5 ** 2)
    return str(value)


def resolve(value: Any, outputs: dict[int, Any]) -> Any:
    """Replace `{{step_N.field}}` references inside `value` with earlier steps' outputs.

    A string that is exactly one reference becomes the referenced value, of any type; a reference
    inside a longer string is replaced by its text (so `"{{step_1.result}} * 2"` works), a
    negative number in parentheses.
    """
    if isinstance(value, str):
        whole = STEP_REFERENCE.fullmatch(value.strip())
        if whole:
            return _lookup(outputs, int(whole.group(1)), whole.group(2))
        return STEP_REFERENCE.sub(
            lambda m: _as_text(_lookup(outputs, int(m.group(1)), m.group(2))), value
        )
    if isinstance(value, dict):
        return {k: resolve(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, outputs) for v in value]
    return value


def run_step(
    step: PlanStep, outputs: dict[int, Any], state: State, services: Services
) -> dict[str, Any]:
    """Run one step and return its record; errors are recorded, never raised."""
    record: dict[str, Any] = {
        "step_number": step.step_number,
        "tool_name": step.tool_name,
        "tool_input": step.tool_input,
        "ok": False,
        "output": None,
        "error": None,
    }
    try:
        tool = services.tools.get(step.tool_name)
        tool_input = resolve(step.tool_input, outputs)
        record["tool_input"] = tool_input
        injected = {"user_id": state.user_id}
        args = tool_input | {
            k: v for k, v in injected.items() if k in services.tools.injected_args(step.tool_name)
        }
        record["output"] = tool.invoke(args)
        record["ok"] = True
    except (ToolError, StepReferenceError) as exc:
        record["error"] = str(exc)
    except ValidationError as exc:
        record["error"] = f"invalid input for {step.tool_name}: {exc.errors()[0]['msg']}"
    except Exception as exc:  # a tool bug must fail the step, not the run
        logger.exception("tool %s failed unexpectedly", step.tool_name)
        record["error"] = f"{step.tool_name} failed unexpectedly ({type(exc).__name__})"
    return record


def executor(state: State, *, services: Services) -> dict[str, Any]:
    """Run each step in order; stop at the first failing one.

    Each step is streamed as it starts and finishes (`step_started`, `step_finished`).
    """
    if state.plan is None:  # unreachable through the graph's edges; kept so a bad edit fails soft
        return {
            "error": "There is no plan to run.",
            "error_type": "validation_error",
            "path": ["executor"],
        }
    records: list[dict[str, Any]] = []
    outputs: dict[int, Any] = {}
    total = len(state.plan.steps)
    for step in state.plan.steps:
        emit(
            "step_started",
            state.run_id,
            step_number=step.step_number,
            total_steps=total,
            tool_name=step.tool_name,
            tool_input=step.tool_input,
        )
        started = time.perf_counter()
        record = run_step(step, outputs, state, services)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        emit("step_finished", state.run_id, **record, total_steps=total, elapsed_ms=elapsed_ms)
        records.append(record)
        if not record["ok"]:
            failed = f"Step {step.step_number} ({step.tool_name}) failed: {record['error']}"
            return {
                "steps": records,
                "answer": None,
                "error": failed,
                "error_type": "tool_error",
                "path": ["executor"],
            }
        outputs[step.step_number] = record["output"]
    return {"steps": records, "answer": records[-1]["output"], "path": ["executor"]}
