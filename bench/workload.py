"""What the benchmark sections share: seeded requests, timed runs, rule plans run without a graph, plots."""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from bench.common import Planner, local_endpoint, ratio, rule_plan, timed
from graph import build_graph
from graph.pattern_planner import plan_request
from graph.state import State
from nodes.executor import run_step
from tests.openai_server import OpenAIServer
from tools.registry import ToolRegistry, build_registry
from tools.todo_store import TodoStore

if TYPE_CHECKING:
    from graph.services import Services

USER = "bench"
"""The user every benchmark run is made for (todos, history and cache are per user)."""

VOLATILE = frozenset({"created_at"})
"""Answer fields that differ between two otherwise identical runs."""

OPERATIONS: tuple[str, ...] = (
    "{0}% of {1}",
    "{0} times {1}",
    "{0} plus {1}",
    "{0} minus {1}",
    "{0} divided by {1}",
    "the square root of {0}",
    "the average of {0}, {1} and {2}",
    "{0} to the power of 3",
    "the sum of {0}, {1} and {2}",
    "the max of {0}, {1} and {2}",
)
"""Calculator requests whose plan re-instantiates with other numbers (so template hits exist)."""

PREFIXES: tuple[str, ...] = ("how much is", "calculate", "compute", "work out")
"""Ways to ask; none is "what is", so a paraphrase ("what's ...?") is never the same template."""


def stable(value: Any) -> Any:
    """Return `value` with volatile fields dropped from every dict inside it, tuples as lists."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list | tuple):
        return [stable(v) for v in value]
    return value


def outcome(response: dict[str, Any]) -> list[Any]:
    """Return what two runs of the same request must agree on: status and answer."""
    return [response["status"], stable(response["answer"])]


@dataclass(frozen=True)
class Calc:
    """One generated calculator request: which operation, how it is asked, with which numbers."""

    operation: int
    prefix: int
    numbers: tuple[int, ...]

    @property
    def text(self) -> str:
        """Return the request as typed."""
        return f"{PREFIXES[self.prefix]} {OPERATIONS[self.operation].format(*self.numbers)}"

    @property
    def paraphrase(self) -> str:
        """Return the same request in other words with the same numbers (a semantic-level hit)."""
        body = OPERATIONS[self.operation].format(*self.numbers).replace("%", " percent")
        return f"what's {body}?"


class Requests:
    """A seeded source of calculator requests whose numbers are never used twice."""

    LOWEST, HIGHEST = 12, 989
    """The numbers drawn: two or three digits, never 1 (a 1 taking a place in a calculation is
    no template hit)."""

    CAPACITY = HIGHEST - LOWEST + 1
    """How many numbers one source can hand out (a request takes up to 3)."""

    def __init__(self, seed: int) -> None:
        """Start the sequence of `seed`."""
        self._rng = random.Random(seed)
        self._used: set[int] = set()

    def numbers(self, count: int) -> tuple[int, ...]:
        """Return `count` numbers from `LOWEST` to `HIGHEST` that no earlier request used.

        Raises:
            ValueError: Fewer than `count` unused numbers are left.
        """
        left = self.CAPACITY - len(self._used)
        if count > left:
            # Drawing would loop forever; a section that needs more must widen the range.
            raise ValueError(
                f"asked for {count} fresh numbers but only {left} of {self.CAPACITY} are left"
            )
        picked: list[int] = []
        while len(picked) < count:
            value = self._rng.randint(self.LOWEST, self.HIGHEST)
            if value not in self._used:
                self._used.add(value)
                picked.append(value)
        return tuple(picked)

    def calc(self, operation: int, prefix: int = 0) -> Calc:
        """Return a request for `operation`, asked with `prefix`, with fresh numbers."""
        return Calc(operation, prefix, self.numbers(3))

    def renumbered(self, calc: Calc) -> Calc:
        """Return `calc` asked the same way with fresh numbers (a template-level hit)."""
        return Calc(calc.operation, calc.prefix, self.numbers(3))


@contextmanager
def scratch_home() -> Iterator[Path]:
    """Yield a fresh, empty data directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="crane-bench-") as tmp:
        yield Path(tmp)


@contextmanager
def endpoint_app(
    latency_s: float, todos: Iterable[str] = (), planner: Planner = rule_plan, **settings: Any
) -> Iterator[tuple[Any, OpenAIServer, Path]]:
    """Yield a Crane graph planning through a fresh local endpoint, the endpoint and its home.

    Args:
        latency_s: how long the endpoint takes per chat request.
        todos: texts of todos `USER` has before the first run, ids 1, 2, ... in order.
        planner: what the endpoint plans for a request (see `bench.common.local_endpoint`).
        **settings: `Context` fields for `build_graph` (`pattern_first`, `cache_enabled`, ...).
    """
    with scratch_home() as home, local_endpoint(latency_s, planner) as server:
        store = TodoStore(home / "todos.sqlite")
        for text in todos:
            store.add(USER, text)
        yield build_graph(home=str(home), **settings), server, home


def timed_invoke(app: Any, prompt: str, user_id: str = USER) -> tuple[dict[str, Any], float]:
    """Run one request through `app.invoke`; return its response and wall time in ms."""
    ms, out = timed(lambda: app.invoke({"prompt": prompt, "user_id": user_id}))
    response: dict[str, Any] = out["response"]
    return response, ms


def todo_list(home: Path, user_id: str = USER) -> list[Any]:
    """Return the todos a run left under `home`, as comparable [id, text, completed] rows."""
    todos = TodoStore(home / "todos.sqlite").list(user_id)["todos"]
    return [[t["id"], t["text"], t["completed"]] for t in todos]


@dataclass(frozen=True)
class _StepServices:
    """The part of `Services` the executor's `run_step` reads: the tool registry."""

    tools: ToolRegistry


class DirectRunner:
    """Plans with the rule planner and runs the steps through the tool registry: no graph.

    The steps run through the executor node's own `run_step` (same registry, same reference
    resolution, same `user_id` injection), so only LangGraph and Crane's other nodes are absent.
    """

    def __init__(self, home: Path, user_id: str = USER) -> None:
        """Use a todo store under `home`, for `user_id`."""
        self._services = cast(
            "Services", _StepServices(build_registry(TodoStore(home / "todos.sqlite")))
        )
        self._state = State(user_id=user_id)

    def run(self, text: str) -> dict[str, Any]:
        """Plan and run `text`; return `status` and `answer` as a Crane response would."""
        plan = plan_request(text).plan
        if plan is None:
            return {"status": "failed", "answer": None}
        outputs: dict[int, Any] = {}
        record: dict[str, Any] = {"output": None}
        for step in plan.steps:
            record = run_step(step, outputs, self._state, self._services)
            if not record["ok"]:
                return {"status": "failed", "answer": None}
            outputs[step.step_number] = record["output"]
        return {"status": "completed", "answer": record["output"]}


def latency_row(label: str, stats: dict[str, float], reference: dict[str, float]) -> list[Any]:
    """Return a table row: label, runs, p50 and p95 (ms), and `reference` p50 and p95 over them.

    Args:
        label: what was timed.
        stats: its `bench.common.ms_stats`.
        reference: the `ms_stats` the ratios are of (the slower path, so ratios read "x faster").
    """
    return [
        label,
        stats["n"],
        round(stats["p50_ms"], 2),
        round(stats["p95_ms"], 2),
        ratio(reference["p50_ms"], stats["p50_ms"]),
        ratio(reference["p95_ms"], stats["p95_ms"]),
    ]
