"""Helpers the benchmark sections share: timing, percentiles, child processes, plots, endpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any, TypeVar

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from graph.metrics import percentile
from graph.pattern_planner import plan_request
from tests.openai_server import OpenAIServer, Reply, running_server

RESULTS = Path(__file__).parent / "results"

ROOT = Path(__file__).resolve().parent.parent
"""The repository: child processes run here, so they import `graph` and `bench` as we do."""

CHILD_TIMEOUT_S = 300.0
"""How long `collect` waits for a child process (a 100k-entry runtime loads for a while)."""

T = TypeVar("T")

Planner = Callable[[str], dict[str, Any] | None]
"""Maps a request's text to the plan (a JSON object) the local endpoint answers for it."""

ENDPOINT_LATENCY_S = 0.3
"""How long the local endpoint takes to answer each chat request, like a fast hosted model."""

ENDPOINT_MODEL = "gpt-4o-mini"
"""The model name the local endpoint is asked for: a priced one, so runs have a cost."""

PLAN_TOKENS = (3200, 100)
"""Prompt and completion tokens the local endpoint reports per plan, so costs scale from a
measured prompt size: `crane eval` against a real model (Qwen2.5-Coder-1.5B served by llama.cpp,
so counted by Qwen's tokenizer; OpenAI's counts English and JSON about the same) recorded about
3,210 prompt tokens per single-call plan (the system prompt with its tool descriptions and
examples) and about 100 completion tokens."""

# Tracing must never reach a network from a benchmark, whatever the shell exports.
_QUIET = {
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING_V2": "false",
    "LANGCHAIN_TRACING": "false",
}


def ms_stats(values_ms: list[float]) -> dict[str, float]:
    """Return n, p50 and p95 (nearest rank, as `crane stats` computes them) of milliseconds."""
    return {
        "n": len(values_ms),
        "p50_ms": round(percentile(values_ms, 50) or 0.0, 4),
        "p95_ms": round(percentile(values_ms, 95) or 0.0, 4),
    }


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Call `fn` once; return its wall time in milliseconds and what it returned."""
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1000, result


def ratio(numerator: float, denominator: float) -> float | None:
    """Return numerator / denominator rounded for a table, or None when the denominator is 0."""
    return round(numerator / denominator, 2) if denominator else None


def rule_plan(text: str) -> dict[str, Any]:
    """Return the plan the local endpoint answers for a request: the rule planner's, else a decline.

    The stand-in model plans exactly as the rules do, so a benchmark's answers can be checked,
    and declines (an empty plan) what the rules refuse.
    """
    result = plan_request(text)
    if result.plan is None:
        return {"steps": [], "final_goal": "No tool can do this."}
    return result.plan.model_dump()


@contextmanager
def quiet_env(extra: Mapping[str, str] | None = None) -> Iterator[None]:
    """Set tracing off and `extra` variables for the block, then restore the environment."""
    saved = dict(os.environ)
    os.environ.update(_QUIET)
    os.environ.update(extra or {})
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextmanager
def offline() -> Iterator[None]:
    """Run the block with no LLM configured, as on a machine without an endpoint."""
    with quiet_env({"OPENAI_API_KEY": ""}):
        yield


def _endpoint_env(base_url: str, api_key: str) -> dict[str, str]:
    return {
        "OPENAI_API_KEY": api_key,
        "OPENAI_BASE_URL": base_url,
        "CRANE_MODEL_FAST": ENDPOINT_MODEL,
        "CRANE_MODEL_SMART": ENDPOINT_MODEL,
        "CRANE_MODEL_REASONING": ENDPOINT_MODEL,
    }


@contextmanager
def local_endpoint(
    latency_s: float = ENDPOINT_LATENCY_S, planner: Planner = rule_plan
) -> Iterator[OpenAIServer]:
    """Serve a local OpenAI-compatible endpoint that answers `planner`'s plan after `latency_s`.

    Within the block `OPENAI_API_KEY` and `OPENAI_BASE_URL` point at it and every tier's model
    is `ENDPOINT_MODEL`, so `build_graph()` plans through it.

    Args:
        latency_s: How long the endpoint takes to answer each chat request.
        planner: The plan for a request's text (the first user message, not Crane's dynamic
            examples); by default the rule planner's, or a decline where the rules refuse.
    """
    prompt_tokens, completion_tokens = PLAN_TOKENS
    with running_server(planner=planner, latency_s=latency_s) as server:
        server.default(Reply(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
        with quiet_env(_endpoint_env(server.base_url, server.api_key)):
            yield server


@dataclass(frozen=True)
class RemoteEndpoint:
    """The local endpoint running in a child process (see `endpoint_process`)."""

    base_url: str
    pid: int

    def stats(self) -> dict[str, Any]:
        """Return the endpoint's counters (`OpenAIServer.stats`), read over HTTP."""
        request = urllib.request.Request(
            f"{self.base_url.removesuffix('/v1')}/stats",
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            stats: dict[str, Any] = json.load(reply)
        return stats


API_KEY = "test-key"
"""The key of the test server, which `bench.endpoint` keeps."""


@contextmanager
def endpoint_process(latency_s: float = ENDPOINT_LATENCY_S) -> Iterator[RemoteEndpoint]:
    """Like `local_endpoint`, with the endpoint in a child process that shares no GIL with Crane."""
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.endpoint", "--latency", str(latency_s)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        base_url = child.stdout.readline().strip()
        if not base_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"bench.endpoint did not start (it printed {base_url!r})")
        with quiet_env(_endpoint_env(base_url, API_KEY)):
            yield RemoteEndpoint(base_url, child.pid)
    finally:
        if child.stdin is not None:
            child.stdin.close()  # the child stops serving when its input ends
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()  # by PID: this child only
            child.wait()
        if child.stdout is not None:
            child.stdout.close()


def spawn(code: str, args: Any, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `python -c code` in a fresh interpreter, with `args` as JSON in `sys.argv[1]`.

    Args:
        code: The child's program; its last line of output must be a JSON object.
        args: Anything JSON-serializable, for the child.
        env: The child's environment (default: this process's).

    Returns:
        The running child; pass it to `collect`.
    """
    return subprocess.Popen(
        [sys.executable, "-c", code, json.dumps(args)],
        cwd=ROOT,
        env=dict(env) if env is not None else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def collect(child: subprocess.Popen[str], timeout_s: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Wait for a child from `spawn` and return the JSON object it printed last.

    Raises:
        RuntimeError: The child failed, timed out or printed no JSON (its stderr is quoted).
    """
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        child.kill()
        _, err = child.communicate()
        raise RuntimeError(
            f"benchmark child timed out after {timeout_s:g} s: {err[-2000:]}"
        ) from exc
    lines = out.strip().splitlines()
    if child.returncode != 0 or not lines:
        raise RuntimeError(f"benchmark child failed ({child.returncode}): {err[-2000:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def child_json(code: str, args: Any, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Run `code` in a fresh interpreter (see `spawn`) and return the JSON object it printed."""
    return collect(spawn(code, args, env))


def middle(values: list[float]) -> float:
    """Return the median of `values` (0.0 for none), rounded for a table."""
    return round(median(values), 4) if values else 0.0


README = Path(__file__).parent.parent / "README.md"


def quote_in_readme(name: str, text: str, readme: Path = README) -> bool:
    """Replace what lies between `<!-- name -->` and `<!-- /name -->` in the README with `text`.

    Returns:
        Whether the README has both markers (and so was updated).
    """
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    content = readme.read_text()
    if begin not in content or end not in content:
        return False
    head, rest = content.split(begin, 1)
    readme.write_text(f"{head}{begin}\n{text.rstrip()}\n{end}{rest.split(end, 1)[1]}")
    return True


def figure(title: str, xlabel: str, ylabel: str) -> tuple[Figure, Axes]:
    """Return a section's 6x4 in figure and its axes, titled and labeled."""
    matplotlib.use("Agg")  # before pyplot: figures go to files, never to a screen
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig, ax


def save(fig: Figure, path: Path) -> None:
    """Write `fig` to `path` as a PNG at 100 dpi and free it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
