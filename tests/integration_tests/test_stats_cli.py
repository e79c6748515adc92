"""`crane stats` over real runs of the whole graph: per-node latency, failures, windows, alerts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from graph import build_graph
from graph.cli import main
from graph.history import SqliteHistory
from tests.fakes import fake_model, openai_error, plan_message

# The recorder writes history before its own time is known: every other node that ran is timed.
RECORDED_NODES = "history_recorder"


def calc(expression: str) -> dict[str, Any]:
    step = {"step_number": 1, "tool_name": "calculator", "tool_input": {"expression": expression}}
    return {"steps": [step | {"reasoning": "compute"}], "final_goal": "compute"}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory with a few real runs: pattern, cache, failures, LLM and fallback."""
    home = tmp_path / "home"
    monkeypatch.setenv("CRANE_HOME", str(home))
    offline = build_graph(home=str(home), embeddings="hash")
    for prompt in ("what is 8% of 50", "what is 8% of 50", "book me a flight", "what is 1/0"):
        offline.invoke({"prompt": prompt})
    offline.invoke({"prompt": "add a todo to call the plumber", "user_id": "bob"})
    # the LLM path through `ainvoke`: llm_planner's own async body, the others in threads
    model = fake_model(plan_message(calc("6 * 7")), openai_error("auth"))
    llm = build_graph(home=str(home), embeddings="hash", chat_model=model, pattern_first=False)
    asyncio.run(llm.ainvoke({"prompt": "zorp six and seven"}))
    asyncio.run(llm.ainvoke({"prompt": "what is 2 plus 2"}))  # auth error: the rules take over
    return home


@pytest.fixture
def crane(capsys: pytest.CaptureFixture[str]) -> Any:
    """Run `crane ARGS` in this process: (exit code, stdout, stderr)."""

    def call(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


def test_every_node_that_ran_is_timed_in_history(home: Path) -> None:
    runs = SqliteHistory(home / "history.sqlite").recent(limit=100)
    assert len(runs) == 7
    for run in runs:
        ran = set(run["path"]) - {RECORDED_NODES}
        assert set(run["node_ms"]) == ran, run["prompt"]
        assert all(ms >= 0 for ms in run["node_ms"].values())
    sources = {run["plan_source"] for run in runs}
    assert {"pattern", "cache", "llm", "fallback"} <= sources


def test_stats_json_has_node_latencies_rates_and_the_llm_part(home: Path, crane: Any) -> None:
    code, out, _ = crane("stats", "--json")
    s = json.loads(out)
    assert code == 0 and s["runs"] == 7
    assert set(s["node_ms"]) == {
        "cache_lookup",
        "complexity_router",
        "llm_planner",
        "validator",
        "pattern_fallback",
        "executor",
    }
    assert s["node_ms"]["cache_lookup"]["runs"] == 7 and s["node_ms"]["llm_planner"]["runs"] == 2
    assert s["latency_ms"]["p50"] <= s["latency_ms"]["p95"] <= s["latency_ms"]["p99"]
    assert s["rates"]["success"] == 5 / 7 and s["rates"]["fallback"] == 1 / 7
    assert s["cache_hits_by_level"] == {"exact": 1}
    assert s["errors_by_type"]["auth"] == {"failed": 0, "recovered": 1}
    assert s["llm_attempts"]["max"] == 1
    assert s["tokens"] == 50 and s["usage_by_model"]["fake-model"]["calls"] == 2  # 1 failed
    assert s["budget"]["level"] == "ok" and isinstance(s["breakers"], list)
    assert any("fallback rate" in alert for alert in s["alerts"])


def test_stats_text_and_failures(home: Path, crane: Any) -> None:
    code, out, _ = crane("stats")
    assert code == 0 and "all users: 7" in out
    assert "Per node (ms): p50 / p95 / p99" in out and "  llm_planner " in out
    assert "Errors by type" not in out and "Slowest requests" not in out
    assert "ALERT: fallback rate 50.0% of LLM-routed runs is above 10%" in out
    code, out, _ = crane("stats", "--failures")
    assert code == 0
    assert "  tool_error: 1 / 0" in out and "  unsupported_request: 1 / 0" in out
    assert "  auth: 0 / 1" in out
    assert "Failure rate by tool:\n  calculator: 1 of 5 runs (20.0%)" in out
    assert "Failure rate by complexity:" in out and "Failure rate by model:" in out
    slowest = out.split("Slowest requests:\n")[1].splitlines()
    assert len([line for line in slowest if line.startswith("  ")]) == 5


def test_stats_since_and_user(home: Path, crane: Any) -> None:
    assert json.loads(crane("stats", "--since", "1h", "--json")[1])["runs"] == 7
    code, out, err = crane("stats", "--since", "2099-01-01", "--json")
    assert code == 2 and out == "" and "in the future" in err
    bob = json.loads(crane("stats", "--user", "bob", "--json")[1])
    assert bob["runs"] == 1 and bob["rates"]["success"] == 1.0
    code, out, err = crane("stats", "--since", "yesterday")
    assert code == 2 and out == ""
    assert "--since" in err and "'yesterday'" in err and "30m, 1h or 7d" in err
    code, out, _ = crane("stats", "--user", "nobody", "--failures")  # an empty window
    assert code == 0 and ": 0\n" in out and "ALERT" not in out and "(none)" in out


def test_alert_when_p95_is_above_the_objective(
    home: Path, crane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRANE_P95_OBJECTIVE_MS", "3600000")  # an hour: no run is that slow
    assert "ALERT: p95 latency" not in crane("stats")[1]
    monkeypatch.setenv("CRANE_P95_OBJECTIVE_MS", "0.001")
    out = crane("stats")[1]
    assert "ALERT: p95 latency" in out and "objective of 0.001 ms" in out
    monkeypatch.setenv("CRANE_P95_OBJECTIVE_MS", "0")
    code, _, err = crane("stats")
    assert code == 2 and "CRANE_P95_OBJECTIVE_MS" in err


def test_node_times_restart_with_each_run_of_a_thread(tmp_path: Path) -> None:
    model = fake_model(plan_message(calc("2 + 3")))
    app = build_graph(
        home=str(tmp_path),
        embeddings="hash",
        chat_model=model,
        pattern_first=False,
        checkpointer=InMemorySaver(),
    )
    config: Any = {"configurable": {"thread_id": "t"}}
    first = app.invoke({"prompt": "zorp 2 and 3"}, config)["response"]
    second = app.invoke({"prompt": "zorp 2 and 3"}, config)["response"]
    assert first["plan_source"] == "llm" and second["plan_source"] == "cache"
    history = SqliteHistory(tmp_path / "history.sqlite")
    planned, cached = (history.get(r["run_id"]) for r in (first, second))
    assert planned is not None and "llm_planner" in planned["node_ms"]
    # the thread's state still held the first run's times: the second run starts afresh
    assert cached is not None and set(cached["node_ms"]) == {
        "cache_lookup",
        "validator",
        "executor",
    }
