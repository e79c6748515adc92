"""Progress events the nodes stream while a run goes on, and a live view of them for terminals.

Nodes call `emit`; callers receive the events with LangGraph's custom stream mode, in the order
they happened, interleaved with other modes' chunks:

```python
for event in app.stream({"prompt": "double 21"}, stream_mode="custom"):
    print(event["event"], event)
```

Every event is a JSON-serializable dict (as long as tool outputs are) with `event`, one of
`EVENTS`, and the `run_id` of the run. The other fields, per event:

- `cache_hit`: `level` (`exact`, `template` or `semantic`), `reason`.
- `route_chosen`: `complexity`, `planner` (`llm` or `rules`), `tier` and `model` (None for the
  rules), `reason`.
- `llm_attempt_started`: `tier`, `model`, `attempt` (on this tier, from 1), `llm_call` (in the
  run, from 1).
- `llm_attempt_finished`: the same four, then `outcome` (`plan` or the attempt's `error_type`) and
  `error` (a sentence, or None).
- `step_started`: `step_number`, `total_steps`, `tool_name`, `tool_input` (as planned, step
  references unresolved).
- `step_finished`: `step_number`, `total_steps`, `tool_name`, `tool_input` (resolved), `ok`,
  `output`, `error`, `elapsed_ms`.

Outside a stream that asks for custom events (`invoke`, or `stream` with other modes only), and
outside a graph run, `emit` does nothing.
"""

from __future__ import annotations

import json
import logging
import typing
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from langgraph.config import get_stream_writer

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

logger = logging.getLogger(__name__)

EventName = Literal[
    "cache_hit",
    "route_chosen",
    "llm_attempt_started",
    "llm_attempt_finished",
    "step_started",
    "step_finished",
]

EVENTS: tuple[EventName, ...] = typing.get_args(EventName)
"""Every event name, in the order a run can emit them."""


def emit(event: EventName, run_id: str, **fields: Any) -> None:
    """Send a progress event to the run's custom stream; a no-op when nobody streams it.

    Never raises: progress is for people watching, and must not fail or slow a run.

    Args:
        event: one of `EVENTS`.
        run_id: the run the event belongs to.
        **fields: the event's fields (see the module docstring).
    """
    try:
        # Outside any runnable context LangGraph raises RuntimeError; in a runnable context that
        # is not a graph run (a node called directly) the config has no runtime: KeyError.
        write = get_stream_writer()
    except (RuntimeError, KeyError):
        return
    try:
        write({"event": event, "run_id": run_id, **fields})
    except Exception as exc:  # a broken consumer must not fail the run
        logger.warning("could not stream the %s event: %s", event, exc)


def _short(value: Any, limit: int = 60) -> str:
    """Return `value` as one line of at most `limit` characters."""
    if isinstance(value, dict) and isinstance(value.get("todos"), list):
        text = f"{len(value['todos'])} todo(s)"
    elif isinstance(value, dict) and {"id", "text"} <= set(value):
        text = f"#{value['id']} {value['text']}"
    else:
        text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _call(event: Mapping[str, Any]) -> str:
    """Return a step as `tool(arg=value, ...)`, as the final rendering shows it."""
    tool_input = event.get("tool_input") or {}
    args = ", ".join(f"{k}={v!r}" for k, v in tool_input.items() if v is not None)
    return f"{event.get('step_number')}. {event.get('tool_name')}({args})"


class ProgressView:
    """What a person sees during a run: what is happening now, above what has finished.

    Feed it events with `handle`; rich renders it (it has `__rich__`) and `lines()` gives the
    same as plain text.
    """

    def __init__(self) -> None:
        self.status = "Planning"
        self.done: list[str] = []
        """Finished LLM attempts and steps: `✓ ...` or `✗ ...`."""
        self.running: dict[int, str] = {}
        """Steps started and not finished, by step number."""

    def handle(self, event: Mapping[str, Any]) -> None:
        """Update the view with one progress event; unknown events are ignored."""
        kind = event.get("event")
        if kind == "cache_hit":
            self.status = f"Reusing a cached plan ({event.get('reason')})"
        elif kind == "route_chosen":
            if event.get("planner") == "llm":
                self.status = f"Planning with {event.get('model')} ({event.get('tier')} tier)"
            else:
                self.status = "Planning with the rule-based planner"
        elif kind == "llm_attempt_started":
            self.status = (
                f"Asking {event.get('model')} ({event.get('tier')} tier, "
                f"attempt {event.get('attempt')})"
            )
        elif kind == "llm_attempt_finished":
            who = f"{event.get('model')} ({event.get('tier')})"
            if event.get("outcome") == "plan":
                self.done.append(f"✓ {who}: plan")
                self.status = "Checking the plan"
            else:
                self.done.append(f"✗ {who}: {event.get('outcome')}")
                self.status = "Planning"
        elif kind == "step_started":
            number = int(event.get("step_number") or 0)
            self.running[number] = f"… {_call(event)}"
            self.status = (
                f"Running step {number} of {event.get('total_steps')}: {event.get('tool_name')}"
            )
        elif kind == "step_finished":
            self.running.pop(int(event.get("step_number") or 0), None)
            result = (
                _short(event.get("output")) if event.get("ok") else f"FAILED: {event.get('error')}"
            )
            mark = "✓" if event.get("ok") else "✗"
            self.status = f"Finished step {event.get('step_number')} of {event.get('total_steps')}"
            elapsed = f" ({event.get('elapsed_ms', 0):.0f} ms)"
            self.done.append(f"{mark} {_call(event)} -> {result}{elapsed}")

    def lines(self) -> list[str]:
        """Return the view as text: finished lines, running steps, then the status line."""
        return [*self.done, *self.running.values(), f"{self.status}…"]

    def __rich__(self) -> RenderableType:
        """Return the view for rich: the finished and running lines above a spinner."""
        # Imported here: nodes import this module, and a server or `invoke` never draws.
        from rich.console import Group
        from rich.spinner import Spinner
        from rich.text import Text

        rows: list[RenderableType] = [Text(line) for line in self.lines()[:-1]]
        return Group(*rows, Spinner("dots", text=Text(f"{self.status}…", style="bold")))


def stream_events(app: Any, graph_input: Any) -> Iterator[tuple[str, Any]]:
    """Yield `("custom", event)` for each progress event, then `("response", response)`."""
    response: Any = None
    for mode, chunk in app.stream(graph_input, stream_mode=["custom", "values"]):
        if mode == "custom":
            yield "custom", chunk
        elif isinstance(chunk, Mapping) and chunk.get("response") is not None:
            response = chunk["response"]
    yield "response", response


def run_with_progress(app: Any, graph_input: Any, console: Console) -> dict[str, Any]:
    """Run `graph_input` on `app` showing live progress on `console`; return the response.

    The live view is transient: once the run is over it is erased, so what stays on the
    terminal is the caller's final rendering.
    """
    from rich.live import Live
    from rich.logging import RichHandler

    view = ProgressView()
    response: dict[str, Any] = {}
    # Log handlers hold the stderr they were made with, past Live's redirection: while the
    # view is up, log records go through the console so they print above it, not into it.
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [RichHandler(console=console, show_time=False, show_path=False)]
    try:
        with Live(view, console=console, transient=True, refresh_per_second=10) as live:
            for kind, item in stream_events(app, graph_input):
                if kind == "custom":
                    view.handle(item)
                    live.refresh()  # show a step as it starts, not at the next tick
                else:
                    response = item
    finally:
        root.handlers = saved
    return response
