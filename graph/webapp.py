"""HTTP routes `langgraph dev` serves next to the graph API: `/metrics/planner`, and Crane in `/metrics`.

`langgraph.json` mounts `app` (`http.app`). The server's own `/metrics` cannot be shadowed by a
mounted app; it serves prometheus_client's default registry, so Crane registers its gauges
there and they appear in that same text, next to the server's. `app` also answers `/metrics`
itself, for when it is served on its own (e.g. `uvicorn graph.webapp:app`).

Every scrape computes the summary from history (one indexed query over the last 24 hours), so
numbers agree across processes and survive restarts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from graph.context import Context

logger = logging.getLogger(__name__)


def _summary(
    user_id: str | None = None, since: str | None = None, until: str | None = None
) -> dict[str, Any]:
    from graph import metrics

    now = time.time()
    return metrics.summary(
        Context.from_env(),
        user_id=user_id,
        since=metrics.parse_since(since, now) if since else None,
        until=metrics.parse_since(until, now) if until else None,
    )


async def planner_metrics(request: Request) -> Response:
    """Return the metrics summary as JSON.

    The query may name a `user` (one user's runs), and `since` and `until` (each a duration
    back from now such as `1h`, or an ISO date or date-time), or leave the window at the last
    24 hours. The summary's `slowest` lists requests as people typed them, so serve this route
    only where whoever can read it may read those.
    """
    params = request.query_params
    try:
        summary = await run_in_threadpool(
            _summary, params.get("user") or None, params.get("since"), params.get("until")
        )
    except ValueError as exc:  # a window that cannot be read: the caller's to fix
        return JSONResponse({"error": str(exc)}, status_code=400)
    except Exception as exc:  # history cannot be read: say so instead of a bare 500
        logger.warning("could not compute Crane's metrics: %s", exc)
        return JSONResponse({"error": f"metrics unavailable: {exc}"}, status_code=503)
    if summary["window"]["since"] >= summary["window"]["until"]:
        return JSONResponse({"error": "the window starts after it ends"}, status_code=400)
    return JSONResponse(summary)


async def prometheus_metrics(request: Request) -> Response:
    """Return the default registry in the Prometheus text format, Crane's gauges included."""
    text = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(text, media_type=CONTENT_TYPE_LATEST)


REFRESH_S = 10.0
"""How often the gauges are recomputed from history, at most."""


class CraneCollector(Collector):
    """Crane's summary as gauges, recomputed in a background thread.

    The server renders `/metrics` on its event loop, where reading SQLite would block every
    other request (and `langgraph dev` refuses blocking calls there): a scrape returns the
    last summary and wakes the refresher when that is older than `REFRESH_S`, so history is
    only read while someone scrapes. `crane_metrics_computed_seconds` says when the summary was
    made: a history that stopped being readable shows as a summary that stops getting newer.
    """

    def __init__(self) -> None:
        self._latest: dict[str, Any] | None = None
        self._at = -math.inf
        self._computed = 0.0
        self._wake = threading.Event()
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the refresher thread, once; it computes a first summary right away."""
        with self._lock:
            if not self._started:
                self._started = True
                threading.Thread(target=self._refresh, name="crane-metrics", daemon=True).start()

    def describe(self) -> list[GaugeMetricFamily]:
        """Return no metric names, so that registering computes no summary.

        The default registry calls `collect` at registration otherwise, at import time.
        """
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the gauges of the last summary (none before the first one is ready)."""
        with self._lock:
            latest, at, stale = (
                self._latest,
                self._computed,
                time.monotonic() - self._at > REFRESH_S,
            )
        if stale:
            self._wake.set()
        if latest is not None:
            yield from summary_metrics(latest)
            yield _gauge(
                "metrics_computed_seconds",
                "When this summary was computed, seconds since the epoch.",
                [],
                [([], at)],
            )

    def _refresh(self) -> None:
        while True:
            try:
                summary = _summary()
            except Exception as exc:  # a broken history must not stop later scrapes
                logger.warning("could not compute Crane's metrics: %s", exc)
            else:
                with self._lock:
                    self._latest, self._at, self._computed = summary, time.monotonic(), time.time()
            self._wake.wait()
            self._wake.clear()


def _gauge(
    name: str, doc: str, labels: list[str], rows: list[tuple[list[str], float | None]]
) -> GaugeMetricFamily:
    gauge = GaugeMetricFamily(f"crane_{name}", doc, labels=labels)
    for values, value in rows:
        if value is not None and math.isfinite(value):  # an empty window has no percentiles
            gauge.add_metric(values, float(value))
    return gauge


def summary_metrics(summary: dict[str, Any]) -> list[GaugeMetricFamily]:
    """Return the Prometheus gauges of a metrics summary (`graph.metrics.summary`).

    Every value describes the summary's window (the last 24 hours by default), so all are
    gauges: a counter would have to be monotonic over the life of the process.
    """
    quantiles = [("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")]
    latency = summary["latency_ms"]
    nodes = summary["node_ms"]
    usage = summary["usage_by_model"]
    return [
        _gauge("runs", "Runs in the window.", [], [([], summary["runs"])]),
        _gauge(
            "latency_ms",
            "Run latency percentiles, milliseconds.",
            ["quantile"],
            [([q], latency[k]) for q, k in quantiles],
        ),
        _gauge(
            "node_latency_ms",
            "Per-node latency percentiles, milliseconds.",
            ["node", "quantile"],
            [([n, q], stats[k]) for n, stats in nodes.items() for q, k in quantiles],
        ),
        _gauge(
            "rate",
            "Share of runs: success, fallback, cache_hit, pattern_first; llm_fallback is the "
            "share of LLM-routed runs whose LLM path gave up.",
            ["kind"],
            [([kind], value) for kind, value in summary["rates"].items()],
        ),
        _gauge(
            "cache_hits",
            "Cache hits by level.",
            ["level"],
            [([level], n) for level, n in summary["cache_hits_by_level"].items()],
        ),
        _gauge(
            "llm_attempts_per_run",
            "LLM attempts per run.",
            ["stat"],
            [([stat], value) for stat, value in summary["llm_attempts"].items()],
        ),
        _gauge(
            "errors",
            "Runs by error type: failed, or recovered by the rule planner.",
            ["error_type", "outcome"],
            [
                ([kind, outcome], n)
                for kind, counts in summary["errors_by_type"].items()
                for outcome, n in counts.items()
            ],
        ),
        _gauge(
            "llm_tokens",
            "LLM tokens by model.",
            ["model"],
            [([m], u.get("tokens")) for m, u in usage.items()],
        ),
        _gauge(
            "llm_cost_usd",
            "LLM cost by model, US dollars.",
            ["model"],
            [([m], u.get("cost_usd")) for m, u in usage.items()],
        ),
        _gauge(
            "llm_calls",
            "LLM calls by model.",
            ["model"],
            [([m], u.get("calls")) for m, u in usage.items()],
        ),
        _gauge(
            "budget_spent_usd",
            "LLM spend today (UTC).",
            [],
            [([], summary["budget"]["spent_usd"])],
        ),
        _gauge(
            "breaker_state",
            "Last recorded state of each model's circuit breaker (1 for the state it is in).",
            ["endpoint", "model", "state"],
            [([b["endpoint"], b["model"], b["state"]], 1) for b in summary["breakers"]],
        ),
        _gauge(
            "routing_runs",
            "Runs by complexity and by plan source.",
            ["by", "value"],
            [
                ([by.removeprefix("by_"), str(value)], n)
                for by, counts in summary["routing"].items()
                for value, n in counts.items()
            ],
        ),
        _gauge(
            "failure_rate",
            "Failure rate by tool, complexity and model.",
            ["by", "value"],
            [
                ([by.removeprefix("by_"), str(value)], row["rate"])
                for by, rows in summary["failure_rate"].items()
                for value, row in rows.items()
            ],
        ),
    ]


COLLECTOR = CraneCollector()
REGISTRY.register(COLLECTOR)


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Start computing the gauges when the server starts, so the first scrape has them."""
    COLLECTOR.start()
    yield


app = Starlette(
    routes=[
        Route("/metrics/planner", planner_metrics, methods=["GET"]),
        Route("/metrics", prometheus_metrics, methods=["GET"]),
    ],
    lifespan=lifespan,
)
