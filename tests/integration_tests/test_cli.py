"""The `crane` command, in-process and as the installed console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from graph.cli import main


def test_run_prints_plan_steps_and_answer(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "add a todo to call the plumber and then show me my tasks"]) == 0
    out = capsys.readouterr().out
    assert "Plan from the rule-based planner" in out
    assert "1. todo_store(action='add', text='call the plumber')" in out
    assert "#1 call the plumber" in out and "Answer:" in out


def test_run_json_is_the_response_dict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "what is the average of 12, 30 and 48", "--json"]) == 0
    response = json.loads(capsys.readouterr().out)
    assert response["answer"] == 30 and response["status"] == "completed"


def test_failed_run_exits_non_zero_with_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "compose a sonnet about autumn"]) == 1
    assert "OPENAI_API_KEY" in capsys.readouterr().out


def test_todos_per_user(capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "remind me to feed the cat", "--user", "alice"])
    capsys.readouterr()
    assert main(["todos", "--user", "alice", "--json"]) == 0
    assert [t["text"] for t in json.loads(capsys.readouterr().out)["todos"]] == ["feed the cat"]
    assert main(["todos"]) == 0
    assert capsys.readouterr().out.strip() == "no todos"


def test_todos_with_a_bad_user_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["todos", "--user", ""]) == 2
    assert capsys.readouterr().err.startswith("Error:")


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "todos" in out and "OPENAI_API_KEY" in out


def run_crane(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed `crane` console script in a subprocess with exactly `env`."""
    script = shutil.which("crane", path=str(Path(sys.executable).parent))
    assert script, "the `crane` console script is installed with the package"
    return subprocess.run(
        [script, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_installed_console_script(tmp_path: Path) -> None:
    env = os.environ | {"CRANE_HOME": str(tmp_path), "OPENAI_API_KEY": ""}
    done = run_crane("run", "what is 6 times 7", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"] == 42


def test_invalid_configuration_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRANE_LLM_TIMEOUT_S", "soon")
    assert main(["run", "what is 2+2"]) == 2
    assert "CRANE_LLM_TIMEOUT_S" in capsys.readouterr().err


def test_stats_on_a_fresh_home(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stats"]) == 0
    out = capsys.readouterr().out
    assert "all users: 0" in out and "LLM: 0 tokens, $0.000000" in out and "Budget" not in out
    assert main(["stats", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["usage_by_model"] == {} and summary["breakers"] == []
    assert summary["budget"] == {"usd": None, "spent_usd": 0.0, "level": "ok"}
