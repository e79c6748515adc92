"""The graph served by a real `langgraph dev` (as Studio uses it), driven through `langgraph_sdk`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph_sdk import get_client

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 90.0
_API = re.compile(r"API:\s*(?:\x1b\[[0-9;]*m)*(http://[0-9.]+:\d+)")


def _get(url: str) -> tuple[int, str, str]:
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.status, reply.headers.get("content-type", ""), reply.read().decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start `langgraph dev` from a temporary directory (it keeps state in its working
    directory), read its real URL from the log (the port asked for may be taken), stop it by
    its process group."""
    work = tmp_path_factory.mktemp("langgraph-dev")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "LANGSMITH_", "LANGCHAIN_", "CRANE_"))
    }
    # Whatever the developer's shell says, this server traces nowhere.
    env |= dict.fromkeys(
        ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"),
        "false",
    )
    env |= {
        "CRANE_HOME": str(work / "home"),
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGGRAPH_NO_VERSION_CHECK": "true",
    }
    log = (work / "server.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "langgraph"),
            "dev",
            "--config",
            str(REPO / "langgraph.json"),
            "--port",
            "2391",
            "--no-browser",
            "--no-reload",
        ],
        cwd=work,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        url = _wait_for_url(process, work / "server.log")
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


def _wait_for_url(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    url = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"langgraph dev exited:\n{log.read_text()[-3000:]}")
        text = log.read_text()
        if url is None and (m := _API.search(text)):
            url = m[1]
        if url is not None:
            try:
                if _get(f"{url}/ok")[0] == 200:
                    return url
            except OSError:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"langgraph dev was not ready:\n{log.read_text()[-3000:]}")


def test_runs_wait_on_a_thread_gives_the_response(server: str) -> None:
    async def main() -> dict[str, Any]:
        async with get_client(url=server) as client:
            return await _twice(client)

    async def _twice(client: Any) -> dict[str, Any]:
        thread = await client.threads.create()
        result = await client.runs.wait(
            thread["thread_id"], "crane", input={"prompt": "what is 8% of 50"}
        )
        assert isinstance(result, dict)
        again = await client.runs.wait(
            thread["thread_id"], "crane", input={"prompt": "what is 8% of 50"}
        )
        assert isinstance(again, dict)
        return {"first": result["response"], "again": again["response"]}

    out = asyncio.run(main())
    assert out["first"]["answer"] == 4 and out["first"]["plan_source"] == "pattern"
    assert out["again"]["plan_source"] == "cache" and out["again"]["cache_hit"]["level"] == "exact"


def test_runs_stream_delivers_node_updates_and_progress_events(server: str) -> None:
    async def main() -> list[tuple[str, Any]]:
        async with get_client(url=server) as client:
            thread = await client.threads.create()
            return [
                (part.event, part.data)
                async for part in client.runs.stream(
                    thread["thread_id"],
                    "crane",
                    input={"prompt": "add a todo to call the plumber and then show me my tasks"},
                    stream_mode=["updates", "custom"],
                )
            ]

    parts = asyncio.run(main())
    nodes = [node for event, data in parts if event == "updates" for node in data]
    assert nodes == [
        "cache_lookup",
        "complexity_router",
        "pattern_fallback",
        "validator",
        "executor",
        "history_recorder",
    ]
    custom = [data for event, data in parts if event == "custom"]
    steps = [(e["event"], e.get("step_number")) for e in custom if e["event"].startswith("step_")]
    assert steps == [
        ("step_started", 1),
        ("step_finished", 1),
        ("step_started", 2),
        ("step_finished", 2),
    ]


def test_metrics_endpoints_answer_next_to_the_graph_api(server: str) -> None:
    before = json.loads(_get(f"{server}/metrics/planner")[2])["runs"]

    async def run() -> None:
        async with get_client(url=server) as client:
            await client.runs.wait(None, "crane", input={"prompt": "what is 6 times 7"})
            await client.runs.wait(None, "crane", input={"prompt": "compose a sonnet"})

    asyncio.run(run())
    status, kind, body = _get(f"{server}/metrics/planner")
    assert status == 200 and kind.startswith("application/json")
    summary = json.loads(body)
    assert summary["runs"] == before + 2 and summary["rates"]["success"] < 1
    # A scrape serves the last summary and asks for a new one: poll until it counts these runs.
    deadline = time.monotonic() + 30
    while True:
        status, kind, text = _get(f"{server}/metrics")
        assert status == 200 and kind.startswith("text/plain")
        runs = re.search(r"^crane_runs (\d+)\.0$", text, re.M)
        if (runs and int(runs[1]) == before + 2) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert runs and int(runs[1]) == before + 2, text[-3000:]
    assert re.search(r'^crane_latency_ms\{quantile="0.95"\} \d', text, re.M)
    assert re.search(r"^crane_metrics_computed_seconds \d", text, re.M)
    status, _, body = _get(f"{server}/metrics/planner?since=1h&user=nobody")
    assert status == 200 and json.loads(body)["runs"] == 0
    try:
        _get(f"{server}/metrics/planner?since=1h&until=2h")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400
    else:
        raise AssertionError("a window that ends before it starts was accepted")
