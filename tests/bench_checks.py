"""What every benchmark section's quick run must satisfy: a well-formed result and a PNG plot."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def check_section(module: ModuleType, tmp_path: Path) -> dict[str, Any]:
    """Run `module` in quick mode, check its result's shape and its plot, and return the result.

    Args:
        module: A `bench` section (`run(*, quick)` and `plot(result, path)`).
        tmp_path: Where the plot is written.
    """
    result: dict[str, Any] = module.run(quick=True)
    assert set(result) >= {"title", "columns", "rows", "headline", "notes", "data"}
    assert result["title"] and result["headline"] and result["notes"]
    assert result["rows"]
    assert all(len(row) == len(result["columns"]) for row in result["rows"])
    json.dumps(result, allow_nan=False)  # bench.json must be able to hold it
    path = tmp_path / "figure.png"
    module.plot(result, path)
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert path.stat().st_size > 1000
    return result
