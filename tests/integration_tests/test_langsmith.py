"""LangSmith traces of whole runs, sent to a local collector: one named, tagged root per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import langsmith as ls
import langsmith.run_trees
import langsmith.utils
import pytest
from langchain_core.tracers.langchain import wait_for_all_tracers

from graph import build_graph
from graph.history import SqliteHistory
from tests.fakes import fake_model, openai_error, plan_message
from tests.integration_tests.test_graph import calc_plan
from tests.langsmith_collector import Collector, running_collector

NODE_NAMES = {
    "cache_lookup",
    "complexity_router",
    "llm_planner",
    "validator",
    "pattern_fallback",
    "executor",
    "history_recorder",
}


@pytest.fixture
def collector() -> Iterator[Collector]:
    with running_collector() as running:
        yield running


@pytest.fixture
def client(collector: Collector) -> ls.Client:
    # No auto-batching: every run is a plain POST, then a PATCH when it ends.
    return ls.Client(api_url=collector.url, api_key="dummy", auto_batch_tracing=False)


class Traced:
    """One traced run: its response, the nodes it visited and its trace as collected."""

    def __init__(
        self, response: dict[str, Any], path: list[str], root: dict[str, Any], c: Collector
    ):
        self.response = response
        self.path = path
        self.root = root
        self.children = c.children(root["id"])
        self.collector = c

    @property
    def metadata(self) -> dict[str, Any]:
        metadata: dict[str, Any] = self.root["extra"]["metadata"]
        return metadata


def traced_run(
    app: Any, home: Path, client: ls.Client, collector: Collector, prompt: str, **extra: Any
) -> Traced:
    """Invoke `app` with tracing on, flush, and return the run with its one new root."""
    before = {run["id"] for run in collector.roots()}
    with ls.tracing_context(client=client, enabled=True):
        response: dict[str, Any] = app.invoke({"prompt": prompt, **extra})["response"]
    wait_for_all_tracers()
    roots = [run for run in collector.roots() if run["id"] not in before]
    assert len(roots) == 1, [run.get("name") for run in roots]
    row = SqliteHistory(home / "history.sqlite").get(response["run_id"])
    assert row is not None
    return Traced(response, row["path"], roots[0], collector)


def assert_node_runs(t: Traced) -> None:
    """The root's children are the nodes that ran, in order, each one a run named after it."""
    assert [run["name"] for run in t.children] == t.path
    assert set(t.path) <= NODE_NAMES
    for run in t.children:
        assert run["run_type"] == "chain"
        assert run["extra"]["metadata"]["langgraph_node"] == run["name"]
        assert run.get("end_time"), run["name"]  # patched: the node's run was closed
    assert t.root.get("end_time") and not t.root.get("error")


def assert_metadata(t: Traced, *, model: str | None, tokens: int, user_id: str = "default") -> None:
    assert t.metadata["run_id"] == t.response["run_id"]
    assert t.metadata["user_id"] == user_id
    assert t.metadata["model"] == model
    assert t.metadata["tokens"] == tokens == t.response["tokens"]
    assert t.metadata["cost_usd"] == t.response["cost_usd"]


# --- each branch of the graph ----------------------------------------------------------------


def test_pattern_plan(tmp_path: Path, client: ls.Client, collector: Collector) -> None:
    app = build_graph(home=tmp_path)
    t = traced_run(app, tmp_path, client, collector, "what is 8% of 50", user_id="alice")
    assert t.response["status"] == "completed" and t.response["plan_source"] == "pattern"
    assert t.root["name"] == "crane: calculator"
    assert set(t.root["tags"]) == {"plan_source:pattern", "complexity:simple"}
    assert_metadata(t, model=None, tokens=0, user_id="alice")
    assert t.path == [
        "cache_lookup",
        "complexity_router",
        "pattern_fallback",
        "validator",
        "executor",
        "history_recorder",
    ]
    assert_node_runs(t)
    # The root was posted under the graph's name and renamed by the PATCH that closed it.
    assert ("PATCH", f"/runs/{t.root['id']}") in collector.requests


def test_trace_names_by_request_kind(
    tmp_path: Path, client: ls.Client, collector: Collector
) -> None:
    app = build_graph(home=tmp_path)
    names = {
        prompt: traced_run(app, tmp_path, client, collector, prompt).root["name"]
        for prompt in (
            "add a todo to call the plumber and then show me my tasks",
            "what is 2 + 2, then add a todo to buy milk",
            "compose a sonnet about autumn",
        )
    }
    assert names == {
        "add a todo to call the plumber and then show me my tasks": "crane: todo",
        "what is 2 + 2, then add a todo to buy milk": "crane: calculator+todo",
        "compose a sonnet about autumn": "crane: refused",
    }


def test_cache_hit(tmp_path: Path, client: ls.Client, collector: Collector) -> None:
    app = build_graph(home=tmp_path)
    first = traced_run(app, tmp_path, client, collector, "what is 8% of 50")
    second = traced_run(app, tmp_path, client, collector, "what is 8% of 50")
    assert first.root["id"] != second.root["id"]
    assert second.response["plan_source"] == "cache"
    assert second.root["name"] == "crane: calculator"
    assert set(second.root["tags"]) == {"plan_source:cache", "cache:exact"}
    assert_metadata(second, model=None, tokens=0)
    assert second.path == ["cache_lookup", "validator", "executor", "history_recorder"]
    assert_node_runs(second)


def test_llm_plan(tmp_path: Path, client: ls.Client, collector: Collector) -> None:
    model = fake_model(plan_message(calc_plan("8% * 50"), tokens=50))
    app = build_graph(home=tmp_path, chat_model=model, pattern_first=False)
    t = traced_run(app, tmp_path, client, collector, "what is 8% of 50")
    assert t.response["status"] == "completed" and t.response["plan_source"] == "llm"
    assert t.root["name"] == "crane: calculator"
    assert set(t.root["tags"]) == {"plan_source:llm", "complexity:simple", "tier:fast"}
    assert_metadata(t, model="fake-model", tokens=50)
    assert t.path == [
        "cache_lookup",
        "complexity_router",
        "llm_planner",
        "validator",
        "executor",
        "history_recorder",
    ]
    assert_node_runs(t)
    # The model call is traced under the node that made it, not under the root.
    (planner,) = [run for run in t.children if run["name"] == "llm_planner"]
    calls = [run for run in collector.children(planner["id"]) if run["run_type"] == "llm"]
    assert [run["name"] for run in calls] == ["FakeChatModel"]


def test_fallback_after_llm_failure(
    tmp_path: Path, client: ls.Client, collector: Collector
) -> None:
    model = fake_model(openai_error("rate_limit"))
    app = build_graph(home=tmp_path, chat_model=model, pattern_first=False)
    t = traced_run(app, tmp_path, client, collector, "what is 8% of 50")
    assert t.response["status"] == "completed" and t.response["plan_source"] == "fallback"
    assert t.root["name"] == "crane: calculator"
    # Completed: no error_type tag, though history keeps why the LLM path failed.
    assert set(t.root["tags"]) == {"plan_source:fallback", "complexity:simple", "tier:fast"}
    assert_metadata(t, model="fake-model", tokens=0)
    assert t.path == [
        "cache_lookup",
        "complexity_router",
        "llm_planner",
        "pattern_fallback",
        "validator",
        "executor",
        "history_recorder",
    ]
    assert_node_runs(t)


def test_failed_runs(tmp_path: Path, client: ls.Client, collector: Collector) -> None:
    app = build_graph(home=tmp_path)
    t = traced_run(app, tmp_path, client, collector, "what is 1/0")
    assert t.response["status"] == "failed" and t.response["error_type"] == "tool_error"
    assert t.root["name"] == "crane: calculator"
    assert set(t.root["tags"]) == {
        "plan_source:pattern",
        "complexity:simple",
        "error_type:tool_error",
    }
    assert_metadata(t, model=None, tokens=0)
    assert_node_runs(t)

    t = traced_run(app, tmp_path, client, collector, "   ")
    assert t.response["error_type"] == "invalid_request"
    assert t.root["name"] == "crane: invalid"
    assert set(t.root["tags"]) == {"error_type:invalid_request"}
    assert_metadata(t, model=None, tokens=0)
    assert t.path == ["cache_lookup", "history_recorder"]
    assert_node_runs(t)


async def _ainvoke(app: Any, prompt: str) -> dict[str, Any]:
    response: dict[str, Any] = (await app.ainvoke({"prompt": prompt}))["response"]
    return response


@pytest.mark.anyio
async def test_ainvoke_is_traced_the_same(
    tmp_path: Path, client: ls.Client, collector: Collector
) -> None:
    """Under `ainvoke` most nodes run in worker threads; the root is still named from there."""
    app = build_graph(home=tmp_path)
    with ls.tracing_context(client=client, enabled=True):
        response = await _ainvoke(app, "what is 8% of 50")
    wait_for_all_tracers()
    (root,) = collector.roots()
    assert root["name"] == "crane: calculator"
    assert root["extra"]["metadata"]["run_id"] == response["run_id"]
    assert [run["name"] for run in collector.children(root["id"])][-1] == "history_recorder"


# --- tracing is the user's choice ------------------------------------------------------------


def test_standard_variables_turn_tracing_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collector: Collector
) -> None:
    """With LANGSMITH_TRACING and an endpoint, the SDK's own batching delivers the same trace."""
    monkeypatch.setenv("LANGSMITH_TRACING", "true")
    # read before LANGSMITH_TRACING: conftest's "false" would win
    monkeypatch.delenv("LANGSMITH_TRACING_V2")
    monkeypatch.delenv("LANGCHAIN_TRACING_V2")
    monkeypatch.setenv("LANGSMITH_ENDPOINT", collector.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "dummy")
    # The SDK caches variables and its client per process: start from the patched ones.
    langsmith.utils.get_env_var.cache_clear()
    monkeypatch.setattr(langsmith.run_trees, "_CLIENT", None)
    try:
        response = build_graph(home=tmp_path).invoke({"prompt": "what is 8% of 50"})["response"]
        wait_for_all_tracers()
    finally:
        langsmith.utils.get_env_var.cache_clear()
    (root,) = collector.roots()
    assert root["name"] == "crane: calculator"
    assert set(root["tags"]) == {"plan_source:pattern", "complexity:simple"}
    assert root["extra"]["metadata"]["run_id"] == response["run_id"]
    assert ("POST", "/runs/multipart") in collector.requests
    children = [run["name"] for run in collector.children(root["id"])]
    assert children[0] == "cache_lookup" and children[-1] == "history_recorder"


def test_off_by_default_nothing_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, collector: Collector
) -> None:
    """Without LANGSMITH_TRACING, a reachable endpoint and a key still receive nothing.

    Nothing is sent, so nothing is waited for: neither `invoke` nor the flush can block on the
    collector.
    """
    monkeypatch.setenv("LANGSMITH_ENDPOINT", collector.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "dummy")
    for var in (
        "LANGSMITH_TRACING_V2",
        "LANGSMITH_TRACING",
        "LANGCHAIN_TRACING_V2",
        "LANGCHAIN_TRACING",
    ):
        monkeypatch.delenv(var)
    langsmith.utils.get_env_var.cache_clear()
    monkeypatch.setattr(langsmith.run_trees, "_CLIENT", None)
    try:
        app = build_graph(home=tmp_path)
        for prompt in ("what is 8% of 50", "what is 8% of 50", "what is 1/0", ""):
            app.invoke({"prompt": prompt})
        wait_for_all_tracers()
    finally:
        langsmith.utils.get_env_var.cache_clear()
    assert collector.requests == []
    assert collector.runs == {}
