"""Calibrate the semantic cache threshold on the labeled pairs and report hit rates and wrong hits.

Run: `.venv/bin/python -m bench.cache_calibration [--embeddings local]`. Writes
`bench/results/cache_calibration.{md,json}` and the table in the README.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import RESULTS, quote_in_readme
from graph.context import DEFAULT_CACHE_THRESHOLD
from tests.cache_eval import calibrate, evaluate, hit_rate, open_cache, unrelated_similarity
from tests.cache_pairs import PAIRS


def run(embeddings: str) -> dict[str, Any]:
    """Return the calibration report for one embedder."""
    with tempfile.TemporaryDirectory() as tmp:
        results = evaluate(PAIRS, Path(tmp), embeddings)
        unrelated = unrelated_similarity(open_cache(Path(tmp) / "cache", embeddings), PAIRS)
    threshold = calibrate(results, unrelated)
    paraphrases = [r for r in results if r.pair.kind == "paraphrase"]
    misses = [r for r in results if r.pair.kind == "near_miss"]

    def levels(rows: list[Any], at: float) -> dict[str, int]:
        return dict(Counter(r.level if r.hit_at(at) else "miss" for r in rows))

    return {
        "embeddings": embeddings,
        "pairs": len(results),
        "paraphrases": len(paraphrases),
        "near_misses": len(misses),
        "calibrated_threshold": threshold,
        "configured_threshold": DEFAULT_CACHE_THRESHOLD,
        "unrelated_max_similarity": round(unrelated, 3),
        "paraphrase_hit_rate": round(hit_rate(results, DEFAULT_CACHE_THRESHOLD), 3),
        "paraphrase_levels": levels(paraphrases, DEFAULT_CACHE_THRESHOLD),
        "near_miss_levels": levels(misses, DEFAULT_CACHE_THRESHOLD),
        "wrong_hits": sum(r.wrong_at(DEFAULT_CACHE_THRESHOLD) for r in results),
        "paraphrase_hit_rate_at_calibrated": round(hit_rate(results, threshold), 3),
        "wrong_hits_at_calibrated": sum(r.wrong_at(threshold) for r in results),
        "wrong_hits_without_threshold": sum(r.wrong_at(-1.0) for r in results),
        "similarity_median": {
            "paraphrase": round(median(r.similarity for r in paraphrases), 3),
            "near_miss": round(median(r.similarity for r in misses), 3),
        },
        "near_miss_similarity_max": round(max(r.similarity for r in misses), 3),
    }


def markdown(report: dict[str, Any]) -> str:
    """Return the report as a markdown table."""
    rows = [
        (
            "labeled pairs (paraphrases / near misses)",
            f"{report['pairs']} ({report['paraphrases']} / {report['near_misses']})",
        ),
        (
            "calibrated threshold (configured default)",
            f"{report['calibrated_threshold']} ({report['configured_threshold']})",
        ),
        ("highest calculator-vs-todo similarity", report["unrelated_max_similarity"]),
        (
            "median similarity: paraphrases / near misses",
            f"{report['similarity_median']['paraphrase']} / {report['similarity_median']['near_miss']}",
        ),
        (
            "paraphrases served at the configured threshold",
            f"{report['paraphrase_hit_rate']:.0%} {report['paraphrase_levels']}",
        ),
        ("near misses served (re-instantiated templates only)", report["near_miss_levels"]),
        ("wrong hits at the configured threshold", report["wrong_hits"]),
        (
            "paraphrases served / wrong hits at the calibrated threshold",
            f"{report['paraphrase_hit_rate_at_calibrated']:.0%} / "
            f"{report['wrong_hits_at_calibrated']}",
        ),
        ("wrong hits with no threshold at all", report["wrong_hits_without_threshold"]),
    ]
    lines = [
        f"Semantic cache calibration ({report['embeddings']} embeddings)",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Run the calibration and write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--embeddings", default="local", help="a CRANE_EMBEDDINGS value")
    args = parser.parse_args(argv)
    report = run(args.embeddings)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cache_calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "cache_calibration.md").write_text(markdown(report))
    quote_in_readme("cache-calibration", markdown(report).split("\n", 2)[2])
    print(markdown(report))  # noqa: T201


if __name__ == "__main__":
    main()
