"""Run every benchmark against its baseline and write `bench/results/` and the README's table.

Run: `.venv/bin/python -m bench` (a few minutes on 2 cores). `--quick` runs tiny sizes in
seconds (a smoke test, not for quoting); `--only lookup,savings` runs some sections. Writes
`bench/results/bench.{md,json}` and one PNG per section. A whole run into `bench/results/` also
runs the cache calibration and updates the README: the tables between its `<!-- bench -->`
markers, and the latest `crane eval` table (`bench/results/eval/eval.md`, which `crane eval
--out bench/results/eval` writes) between its `<!-- eval -->` markers. `--quote-eval` only does
the latter.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import RESULTS, quote_in_readme

SECTIONS = (
    "lookup",
    "memory",
    "endtoend",
    "overhead",
    "concurrency",
    "savings",
    "embedders",
)
"""Section modules of `bench`, in the order the results show them."""


def run_sections(names: list[str], *, quick: bool, out: Path) -> dict[str, Any]:
    """Run the named sections, plot each into `out`, and return their results (errors included)."""
    report: dict[str, Any] = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "sections": {},
    }
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        started = time.perf_counter()
        print(f"bench: {name} ...", file=sys.stderr, flush=True)  # noqa: T201
        try:
            result = module.run(quick=quick)
            module.plot(result, out / f"{name}.png")
            result["plot"] = f"{name}.png"
        except Exception:  # one broken section must not hide the others' results
            result = {"title": name, "error": traceback.format_exc()}
        result["seconds"] = round(time.perf_counter() - started, 1)
        report["sections"][name] = result
    return report


def _table(result: dict[str, Any]) -> str:
    columns = result["columns"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in result["rows"]]
    return "\n".join(lines)


def markdown(report: dict[str, Any], *, notes: bool = True) -> str:
    """Return the report as markdown: per section its headline and table (and notes, plot)."""
    machine = report["machine"]
    parts = [
        f"Measured {report['generated_at']} on {machine['cpus']} CPUs, Python "
        f"{machine['python']}; medians and ratios against a baseline from the same run."
    ]
    for result in report["sections"].values():
        if "error" in result:
            parts.append(f"### {result['title']}\n\nFAILED:\n\n```\n{result['error']}```")
            continue
        part = f"### {result['title']}\n\n{result['headline']}\n\n{_table(result)}"
        if notes:
            part += "".join(f"\n- {n}" for n in result.get("notes", []))
            part += f"\n\n![{result['title']}]({result['plot']})"
        parts.append(part)
    return "\n\n".join(parts) + "\n"


EVAL_TABLE = RESULTS / "eval" / "eval.md"


def quote_eval() -> bool:
    """Quote the latest `crane eval` table in the README; False when there is none."""
    if not EVAL_TABLE.exists():
        print(f"bench: no {EVAL_TABLE} to quote", file=sys.stderr)  # noqa: T201
        return False
    return quote_in_readme("eval", EVAL_TABLE.read_text())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; return 1 if a section failed."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--only", default="", help="comma-separated sections to run")
    parser.add_argument("--out", default=str(RESULTS), help="where to write the results")
    parser.add_argument(
        "--no-calibration", action="store_true", help="skip the cache threshold calibration"
    )
    parser.add_argument(
        "--quote-eval", action="store_true", help="only quote the latest eval table in the README"
    )
    args = parser.parse_args(argv)
    if args.quote_eval:
        return 0 if quote_eval() else 1
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SECTIONS)
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run_sections(names, quick=args.quick, out=out)
    (out / "bench.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(report))
    # Only a whole run into bench/results/ speaks for the repository's figures.
    if not args.quick and not args.only and out.resolve() == RESULTS.resolve():
        quote_in_readme("bench", markdown(report, notes=False).replace("### ", "#### "))
        quote_eval()
        if not args.no_calibration:
            from bench import cache_calibration

            cache_calibration.main([])
    print(markdown(report, notes=False))  # noqa: T201
    return 1 if any("error" in r for r in report["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
