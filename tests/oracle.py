"""What running a plan gives, in a form two runs can be compared by.

The plan cache may serve the plan made for one request to another. Serving is right exactly
when the served plan gives the same outcome as planning the new request from scratch, both run
on the same starting todo list. Runs go through the graph's own executor node (its `run_step`
and `resolve`, `{{step_N.field}}` references included), on a real todo store seeded with
SEED_TODOS, so ids 1 to len(SEED_TODOS) exist.
"""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

from graph.pattern_planner import plan_request
from graph.plan import Plan
from graph.state import State
from nodes.executor import executor
from tools.registry import ToolRegistry, build_registry
from tools.todo_store import TodoStore

if TYPE_CHECKING:
    from graph.services import Services

USER_ID = "default"

SEED_TODOS: tuple[str, ...] = (
    "call the dentist",  # 1
    "call the plumber",  # 2
    "buy milk",  # 3
    "buy bread",  # 4
    "renew my passport",  # 5
    "renew my license",  # 6
    "water the plants",  # 7
    "pay the electricity bill",  # 8
    "email the landlord",  # 9
    "book a table for two",  # 10
)
"""The todo list every run starts from, in id order."""

VOLATILE = frozenset({"created_at"})
"""Fields that differ between two otherwise identical runs."""

Todo: TypeAlias = tuple[str, str, bool]
"""A todo as compared: id, text, completed."""

Outcome: TypeAlias = (
    tuple[Literal["refused"]] | tuple[Literal["ok", "failed"], Any, tuple[Todo, ...]]
)
"""("refused",) when there is no plan; else the status, the answer (for a failed run, the
error), and the todo list the run leaves behind."""


@dataclass(frozen=True)
class _StepServices:
    """The part of `Services` the executor uses: the tool registry."""

    tools: ToolRegistry


def _stable(value: Any) -> Any:
    """Return `value` with volatile fields dropped from every dict inside it."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [_stable(v) for v in value]
    return value


@functools.cache
def _seeded_image() -> bytes:
    """Return the bytes of a todo database holding SEED_TODOS, added through `TodoStore.add`."""
    with tempfile.TemporaryDirectory() as tmp:
        store = TodoStore(Path(tmp) / "todos.sqlite")
        for text in SEED_TODOS:
            store.add(USER_ID, text)
        # Every connection of the store is closed: the file holds everything, nothing is in WAL.
        with contextlib.closing(sqlite3.connect(store.path)) as conn:
            return conn.serialize()


def seeded_store(home: Path) -> TodoStore:
    """Return a new todo store under `home` holding SEED_TODOS (a copy: seeding is slow)."""
    path = home / "todos.sqlite"
    if path.exists():
        raise FileExistsError(f"{path} exists: every run needs a fresh todo store")
    home.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_seeded_image())
    return TodoStore(path)


def outcome(plan: Plan | None, home: Path) -> Outcome:
    """Run `plan` on a fresh seeded todo store under `home` and return what it gave."""
    if plan is None:
        return ("refused",)
    store = seeded_store(home)
    services = cast("Services", _StepServices(build_registry(store)))
    update = executor(State(plan=plan, user_id=USER_ID), services=services)
    todos = tuple((t["id"], t["text"], t["completed"]) for t in store.list(USER_ID)["todos"])
    if update.get("error"):
        return ("failed", update["error"], todos)
    return ("ok", _stable(update["answer"]), todos)


def scratch_plan(request: str) -> Plan | None:
    """Return the plan the rule planner makes for `request`, or None if it refuses."""
    return plan_request(request).plan


def same_result(served: Plan | None, request: str, tmp: Path) -> bool:
    """Tell whether running `served` gives what planning `request` from scratch would."""
    return outcome(served, tmp / "served") == outcome(scratch_plan(request), tmp / "scratch")
