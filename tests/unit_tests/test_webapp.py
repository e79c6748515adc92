from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from graph import metrics
from graph.context import Context
from graph.history import SqliteHistory
from graph.webapp import summary_metrics


def text_of(summary: dict) -> str:
    registry = CollectorRegistry()

    class One:
        def collect(self):
            yield from summary_metrics(summary)

    registry.register(One())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def row(run_id: str, latency: float, **extra) -> dict:
    return {
        "run_id": run_id,
        "user_id": "u",
        "created_at": 1000.0,
        "prompt": "p",
        "status": "completed",
        "plan_source": "pattern",
        "plan": None,
        "steps": [],
        "answer": None,
        "error": None,
        "error_type": None,
        "complexity": "simple",
        "latency_ms": latency,
        "path": ["cache_lookup"],
        "node_ms": {"cache_lookup": latency / 2},
        "usage": {"m": {"calls": 1, "tokens": 7, "cost_usd": 0.5}},
    } | extra


def test_the_summary_becomes_gauges(tmp_path: Path) -> None:
    history = SqliteHistory(tmp_path / "history.sqlite")
    history.record(row("a", 10.0))
    history.record(row("b", 30.0, status="failed", error_type="tool_error", error="x"))
    summary = metrics.summary(Context.from_env(home=str(tmp_path)), since=0, until=2000)
    text = text_of(summary)
    assert "crane_runs 2.0" in text
    assert 'crane_latency_ms{quantile="0.5"} 10.0' in text
    assert 'crane_latency_ms{quantile="0.99"} 30.0' in text
    assert 'crane_node_latency_ms{node="cache_lookup",quantile="0.5"} 5.0' in text
    assert 'crane_rate{kind="success"} 0.5' in text
    assert 'crane_errors{error_type="tool_error",outcome="failed"} 1.0' in text
    assert 'crane_llm_tokens{model="m"} 14.0' in text
    assert 'crane_llm_cost_usd{model="m"} 1.0' in text


def test_an_empty_window_has_no_percentiles_but_still_its_run_count(tmp_path: Path) -> None:
    summary = metrics.summary(Context.from_env(home=str(tmp_path)))
    text = text_of(summary)
    assert "crane_runs 0.0" in text and "crane_latency_ms{" not in text
