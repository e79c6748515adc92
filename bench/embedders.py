"""Embedder backends: load time and per-query latency of each `CRANE_EMBEDDINGS` choice, against `hash`."""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

from bench.common import child_json, figure, ms_stats, quiet_env, ratio, save
from bench.lookup import DIM, sig3
from tests.openai_server import running_server

REQUESTS: tuple[str, ...] = (
    "what is 8% of 50",
    "add a todo to call mom",
    "what's 15 times 23",
    "remind me to buy milk",
    "list my todos",
    "how much is 120 divided by 8",
    "add pick up the dry cleaning to my list",
    "what is the square root of 144",
    "mark call mom as done",
    "calculate 7 plus 19",
    "add book a dentist appointment",
    "what is 2 to the power of 10",
    "show me what's on my list",
    "what is 18% tip on 64 dollars",
    "add water the plants",
    "how much is 1000 minus 357",
    "delete the todo about milk",
    "compute the average of 4, 8 and 15",
    "add renew my passport to the todo list",
    "what is 3.5 times 12",
    "remind me to pay the electricity bill",
    "what is 25% of 360",
    "clear my completed todos",
    "how many minutes are in 3 hours",
    "add send the birthday card to grandma",
    "what's 99 plus 1",
    "what do I still have to do",
    "what is 45 divided by 9",
    "add email the landlord about the heater",
    "what is 12 squared",
    "remind me to take out the trash",
    "work out 250 times 4",
    "add schedule the car service",
    "what is 7% of 1200",
    "mark buy milk as finished",
    "how much is 64 divided by 4",
    "add call the plumber tomorrow",
    "what is the sum of 3, 9 and 27",
    "what's left on my todo list",
    "calculate 1.5 plus 2.25",
    "add return the library books",
    "what is 10 to the power of 3",
    "remind me to stretch every morning",
    "what is 33 minus 11",
    "add buy a gift for the party",
    "what is the max of 4, 19 and 7",
    "add cancel the gym membership",
    "what is 60% of 80",
    "remove water the plants from my list",
    "how much is 5 times 5 times 5",
)
"""Fifty short everyday requests of the kind the cache embeds."""

QUICK_REQUESTS = 5
FASTEMBED_MODEL = "BAAI/bge-small-en-v1.5"
"""fastembed's default model, measured only if it is already in fastembed's local cache."""

EMBED_TIMEOUT_S = 10.0

# Runs in a fresh interpreter, so a model loaded by an earlier measurement (the local model is
# shared process-wide) cannot make a load look free.
_CHILD = r"""
import json, math, sys, time
args = json.loads(sys.argv[1])
start = time.perf_counter()
from graph.embeddings import make_embeddings
imported = time.perf_counter()
embedder = make_embeddings(args["spec"], timeout_s=args["timeout_s"])
embedder.embed_query(args["texts"][0])
loaded = time.perf_counter()
query_ms, dims, norms = [], set(), []
for _ in range(args["rounds"]):
    for text in args["texts"]:
        t = time.perf_counter()
        vector = embedder.embed_query(text)
        query_ms.append((time.perf_counter() - t) * 1000)
        dims.add(len(vector))
        norms.append(math.sqrt(sum(x * x for x in vector)))
print(json.dumps({
    "import_s": imported - start, "load_s": loaded - imported, "query_ms": query_ms,
    "dims": sorted(dims), "min_norm": min(norms), "max_norm": max(norms),
}))
"""


def _measure(spec: str, texts: list[str], rounds: int) -> dict[str, Any]:
    """Measure one backend in a fresh process (inheriting this process's environment)."""
    result = child_json(
        _CHILD,
        {"spec": spec, "texts": texts, "rounds": rounds, "timeout_s": EMBED_TIMEOUT_S},
        dict(os.environ),
    )
    if len(result["dims"]) != 1 or abs(result["min_norm"] - 1) > 1e-3:
        raise AssertionError(f"{spec} returned vectors of {result['dims']} dimensions or not unit")
    if abs(result["max_norm"] - 1) > 1e-3:
        raise AssertionError(f"{spec} returned vectors that are not unit length")
    return {
        "spec": spec,
        "dim": result["dims"][0],
        "import_s": round(result["import_s"], 3),
        "load_ms": round(result["load_s"] * 1000, 2),
        "query": ms_stats(result["query_ms"]),
        "query_samples_ms": [round(v, 4) for v in result["query_ms"]],
    }


def _fastembed_skip() -> str | None:
    """Return why the fastembed row is skipped, or None when its model is cached locally."""
    if importlib.util.find_spec("fastembed") is None:
        return "not installed / skipped"
    cache = Path(
        os.environ.get("FASTEMBED_CACHE_PATH") or Path(tempfile.gettempdir()) / "fastembed_cache"
    )
    name = FASTEMBED_MODEL.rsplit("/", 1)[-1].lower()
    cached = cache.is_dir() and any(name in p.name.lower() for p in cache.iterdir())
    # Never download: a model not already on disk is skipped.
    return None if cached else f"model not cached in {cache} / skipped"


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure each embedder backend: load in a fresh process, then per-query latency.

    Args:
        quick: Five requests, one round: a smoke test.

    Returns:
        The section's title, columns, rows, headline, notes and raw data.

    Raises:
        RuntimeError: A backend's process failed.
        AssertionError: A backend returned vectors that are not unit length of one dimension,
            or the local endpoint did not see the openai backend's requests.
    """
    texts = list(REQUESTS[:QUICK_REQUESTS] if quick else REQUESTS)
    rounds = 1 if quick else 4
    backends: dict[str, dict[str, Any]] = {}
    with quiet_env():
        backends["hash"] = _measure("hash", texts, rounds)
        backends["local"] = _measure("local", texts, rounds)
    with running_server(embedding_dim=DIM) as server:
        env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": server.base_url}
        with quiet_env(env):
            backends["openai"] = _measure("openai", texts, rounds)
        served = len(server.embedding_requests)
    if served != 1 + rounds * len(texts):
        raise AssertionError(f"the local endpoint answered {served} embeddings requests")
    backends["openai"]["endpoint_requests"] = served
    fastembed = f"fastembed:{FASTEMBED_MODEL}"
    skip = _fastembed_skip()
    if skip is None:
        # Belt and braces: the Hugging Face hub must not fetch anything either.
        with quiet_env({"HF_HUB_OFFLINE": "1"}):
            backends["fastembed"] = _measure(fastembed, texts, rounds)
    else:
        backends["fastembed"] = {"spec": fastembed, "skipped": skip}
    base = backends["hash"]
    for m in backends.values():
        if "skipped" not in m:
            m["p50_ratio"] = ratio(m["query"]["p50_ms"], base["query"]["p50_ms"])
    labels = {
        "hash": "hash (baseline: no model)",
        "local": "local (bundled MiniLM int8 ONNX)",
        "openai": "openai (local HTTP server)",
        "fastembed": fastembed,
    }
    table = []
    for name, m in backends.items():
        if "skipped" in m:
            table.append([labels[name], m["skipped"], "", "", "", ""])
            continue
        table.append(
            [
                labels[name],
                sig3(m["load_ms"]),
                sig3(m["query"]["p50_ms"]),
                sig3(m["query"]["p95_ms"]),
                m["p50_ratio"],
                m["dim"],
            ]
        )
    local, openai = backends["local"], backends["openai"]
    headline = (
        f"Per request (p50) the bundled MiniLM embeds in {local['query']['p50_ms']:.2f} ms, "
        f"{local['p50_ratio']}x the hash baseline's {base['query']['p50_ms']:.3f} ms, and loads "
        f"in {local['load_ms'] / 1000:.2f} s in a fresh process; a round trip to a local "
        f"OpenAI-compatible server costs {openai['query']['p50_ms']:.2f} ms "
        f"({openai['p50_ratio']}x hash)"
    )
    notes = [
        f"Requests: {len(texts)} short everyday requests ('what is 8% of 50', 'add a todo to "
        f"call mom', ...), each embedded {rounds} time(s) with embed_query after the first "
        "embedding; p50/p95 per request.",
        "Load: make_embeddings(spec) plus the first embed_query, in a fresh Python process per "
        "backend (the local model is shared process-wide once loaded, so an in-process "
        "measurement after the first would be free). It includes the imports each backend makes "
        "on first use (onnxruntime and tokenizers for local; openai and langchain_openai for "
        "openai, most of its load); importing graph.embeddings, the same for every backend, is "
        "not included (in data: import_s).",
        "Baseline: hash, feature hashing with no model at all; 'p50 / hash' is each backend's "
        "per-query p50 over hash's, from the same run. Load times are not given as ratios: "
        "hash loads nothing, so its load time is next to 0 ms and a ratio over it means nothing.",
        f"openai: the real langchain OpenAIEmbeddings client against tests.openai_server on "
        f"127.0.0.1 returning {DIM}-dimension vectors computed from sha256 digests, so it "
        "measures the client and a local HTTP round trip, not a hosted model (which adds network "
        "and inference time).",
        f"fastembed:{FASTEMBED_MODEL}: measured only if the fastembed package is installed and "
        "the model is already in its local cache; never downloaded.",
    ]
    if quick:
        notes.append(f"Quick mode: {len(texts)} requests, one round; not for quoting.")
    return {
        "title": "Embedder backends",
        "columns": [
            "backend",
            "load (ms)",
            "query p50 (ms)",
            "query p95 (ms)",
            "p50 / hash",
            "dim",
        ],
        "rows": table,
        "headline": headline,
        "notes": notes,
        "data": {"requests": texts, "rounds": rounds, "backends": backends},
    }


def plot(result: dict[str, Any], path: Path) -> None:
    """Write a bar chart of each measured backend's per-query p50, on a log scale."""
    measured = {k: v for k, v in result["data"]["backends"].items() if "skipped" not in v}
    values = [m["query"]["p50_ms"] for m in measured.values()]
    fig, ax = figure(result["title"], "CRANE_EMBEDDINGS backend", "embed_query p50 (ms, log scale)")
    bars = ax.bar(list(measured), values, color="#1f77b4")
    ax.bar_label(bars, labels=[f"{v:.3g} ms" for v in values])
    ax.set_yscale("log")
    ax.set_ylim(min(values) / 2, max(values) * 3)
    save(fig, path)
