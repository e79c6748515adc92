"""`python -m bench`: runs the sections, writes markdown, JSON and plots, and quotes the README."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import __main__ as runner
from bench import overhead
from bench.common import quote_in_readme


def test_the_runner_writes_every_result_of_a_section(tmp_path: Path) -> None:
    readme_before = (Path(runner.__file__).parent.parent / "README.md").read_text()
    assert runner.main(["--quick", "--only", "overhead", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    section = report["sections"]["overhead"]
    assert report["quick"] is True and section["plot"] == "overhead.png"
    assert (tmp_path / "overhead.png").read_bytes().startswith(b"\x89PNG")
    md = (tmp_path / "bench.md").read_text()
    assert f"### {section['title']}" in md and section["headline"] in md
    assert "| " + " | ".join(section["columns"]) + " |" in md
    # A quick or partial run never replaces the README's figures.
    assert (Path(runner.__file__).parent.parent / "README.md").read_text() == readme_before


def test_a_failing_section_is_reported_and_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*, quick: bool = False) -> dict[str, object]:
        raise RuntimeError("the endpoint would not start")

    monkeypatch.setattr(overhead, "run", broken)
    assert runner.main(["--quick", "--only", "overhead", "--out", str(tmp_path)]) == 1
    assert "the endpoint would not start" in (tmp_path / "bench.md").read_text()
    with pytest.raises(SystemExit):
        runner.main(["--only", "nonsense", "--out", str(tmp_path)])


def test_quote_in_readme_replaces_only_between_its_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench -->\nold\n<!-- /bench -->\noutro\n")
    assert quote_in_readme("bench", "| a |\n", readme) is True
    assert readme.read_text() == "intro\n<!-- bench -->\n| a |\n<!-- /bench -->\noutro\n"
    assert quote_in_readme("eval", "x", readme) is False
