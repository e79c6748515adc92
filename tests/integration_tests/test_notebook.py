"""The walkthrough notebook, executed headlessly by nbclient as a reader would run it."""

from __future__ import annotations

import ast
import os
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WALKTHROUGH = NOTEBOOKS / "crane_walkthrough.ipynb"

TRACING = ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING")
"""Every name the LangSmith SDK reads to turn tracing on (see tests/conftest.py)."""

BENIGN_STDERR = {"Matplotlib is building the font cache; this may take a moment."}
"""What a kernel may say on stderr in a fresh MPLCONFIGDIR on a slow machine (logged after 5 s)."""

PROBE = """\
import os, sys
{
    "executable": sys.executable,
    "env": {
        k: v
        for k, v in os.environ.items()
        if k.startswith(("LANGSMITH_", "LANGCHAIN_", "OPENAI_", "CRANE_"))
    },
}"""
"""Run first, before the notebook's own setup changes the environment: what the kernel was given."""


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Execute the notebook once for all the tests here; return it, the probe's answer and tmp."""
    tmp = tmp_path_factory.mktemp("notebook")
    with pytest.MonkeyPatch.context() as mp:
        # The kernel inherits this process's environment (conftest's autouse fixture, which
        # turns tracing off and drops keys, is function-scoped: redo what matters here).
        for var in [v for v in os.environ if v.startswith(("LANGSMITH_", "LANGCHAIN_"))]:
            mp.delenv(var)
        for var in TRACING:
            mp.setenv(var, "false")
        for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "MPLBACKEND", "JUPYTER_PATH"):
            mp.delenv(var, raising=False)
        for var in [v for v in os.environ if v.startswith("CRANE_")]:
            mp.delenv(var)
        mp.setenv("CRANE_HOME", str(tmp / "crane-home"))  # the notebook sets its own; a guard
        # Everything the kernel, IPython, Jupyter, matplotlib and onnxruntime write goes under
        # tmp. User kernelspecs are not searched and the environment's come first, so
        # "python3" is this venv's (installed by ipykernel), whose `python` means
        # sys.executable.
        dirs = {
            "TMPDIR": "tmp",
            "IPYTHONDIR": "ipython",
            "JUPYTER_CONFIG_DIR": "jupyter-config",
            "JUPYTER_DATA_DIR": "jupyter-data",
            "JUPYTER_RUNTIME_DIR": "jupyter-runtime",
            "MPLCONFIGDIR": "matplotlib",
            "XDG_CACHE_HOME": "cache",
        }
        for var, name in dirs.items():
            (tmp / name).mkdir()
            mp.setenv(var, str(tmp / name))
        mp.setenv("JUPYTER_PREFER_ENV_PATH", "1")
        mp.setenv("PYTHONDONTWRITEBYTECODE", "1")  # no __pycache__ in the repository
        # Older jupyter_core 5.x releases warn (DeprecationWarning) when `jupyter_core.paths`
        # is first imported, which importing nbclient does, unless this opts in to the
        # platformdirs locations: so set it first, then import. The kernel inherits it too.
        mp.setenv("JUPYTER_PLATFORM_DIRS", "1")
        from nbclient import NotebookClient

        notebook = nbformat.read(WALKTHROUGH, as_version=4)
        probe = nbformat.v4.new_code_cell(PROBE)
        notebook.cells.insert(0, probe)
        client = NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )
        client.execute()  # raises CellExecutionError on the first failing cell
    return {"notebook": notebook, "probe": _value(probe), "tmp": tmp}


def _text(cell: Any) -> str:
    """Return everything a code cell printed or displayed as text."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.extend(str(v) for k, v in output["data"].items() if k.startswith("text/"))
    return "\n".join(parts)


def _value(cell: Any) -> Any:
    """Return the value a code cell displayed as its last expression (a literal)."""
    results = [o for o in cell["outputs"] if o["output_type"] == "execute_result"]
    assert len(results) == 1, cell["source"]
    return ast.literal_eval(results[0]["data"]["text/plain"])


def _cell(executed: dict[str, Any], snippet: str) -> Any:
    """Return the one code cell whose source contains `snippet`."""
    cells = [
        c for c in executed["notebook"].cells if c["cell_type"] == "code" and snippet in c["source"]
    ]
    assert len(cells) == 1, snippet
    return cells[0]


def test_the_kernel_is_this_venv_with_tracing_off(executed: dict[str, Any]) -> None:
    probe = executed["probe"]
    assert Path(probe["executable"]).resolve() == Path(sys.executable).resolve()
    env = probe["env"]
    assert {k: v for k, v in env.items() if k.startswith(("LANGSMITH_", "LANGCHAIN_"))} == {
        var: "false" for var in TRACING
    }
    assert "OPENAI_API_KEY" not in env and "OPENAI_BASE_URL" not in env


def test_no_cell_errored_or_warned(executed: dict[str, Any]) -> None:
    for cell in executed["notebook"].cells:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", cell["source"]
            if output.get("name") == "stderr":
                noise = [line for line in output["text"].splitlines() if line not in BENIGN_STDERR]
                assert not noise, (cell["source"], output["text"])
    for cell in executed["notebook"].cells[1:]:  # after the probe
        # the notebook's temporary CRANE_HOME (under TMPDIR) is never shown
        assert str(executed["tmp"]) not in _text(cell), cell["source"]


def test_the_graph_is_drawn(executed: dict[str, Any]) -> None:
    assert "| cache_lookup |" in _text(_cell(executed, "draw_ascii()"))
    assert "llm_planner -.-> llm_planner;" in _text(_cell(executed, "draw_mermaid()"))


def test_offline_requests(executed: dict[str, Any]) -> None:
    response = _value(_cell(executed, 'app.invoke({"prompt": "what is 8% of 50"})'))
    assert (response["answer"], response["plan_source"]) == (4, "pattern")
    todo, refused = _value(_cell(executed, "compose a sonnet"))
    assert todo["status"] == "completed" and len(todo["steps"]) == 2
    assert (refused["status"], refused["error_type"]) == ("failed", "unsupported_request")


def test_cache_hits_are_shown(executed: dict[str, Any]) -> None:
    runs = _value(_cell(executed, 'cached("what is 8% of 50")'))
    assert [(r["plan_source"], r["cache_level"]) for r in runs] == [
        ("cache", "exact"),
        ("cache", "semantic"),
        ("cache", "template"),
        ("pattern", None),
    ]
    assert [r["answer"] for r in runs] == [4, 4, 30, 45]
    todos = _value(_cell(executed, 'cached("add a todo'))
    assert todos["cache_level"] == "exact" and len(todos["answer"]["todos"]) == 2


def test_the_llm_plans_on_the_local_endpoint(executed: dict[str, Any]) -> None:
    simple, complex_ = _value(_cell(executed, "LLM_FIELDS = "))
    assert (simple["plan_source"], simple["model"], simple["answer"]) == ("llm", "gpt-4o-mini", 84)
    assert (complex_["plan_source"], complex_["model"]) == ("llm", "gpt-4o")
    assert simple["tokens"] > 0 and simple["cost_usd"] > 0


def test_failures_recover_or_fall_back(executed: dict[str, Any]) -> None:
    def run(snippet: str) -> dict[str, Any]:
        value = _value(_cell(executed, snippet))
        return value[0] if isinstance(value, list) else value

    rate_limit = run("rate_limited(")
    assert rate_limit["plan_source"] == "llm" and "rate_limit" in rate_limit["llm_route"][0]
    assert run("server_error(")["llm_route"][0].endswith("server_error")
    repaired = run('server.script("what is 2 to the power')
    assert repaired["plan_source"] == "llm" and "repairing" in repaired["llm_route"][1]
    garbage = run('server.script("remind me')
    assert (garbage["plan_source"], garbage["error_type"]) == ("fallback", "invalid_output")
    assert garbage["fallback_reason"]
    escalated = run('server.script("cube root')
    assert (escalated["plan_source"], escalated["model"], escalated["answer"]) == (
        "llm",
        "gpt-4o",
        3,
    )
    timeout = run("Delay(")
    assert (timeout["plan_source"], timeout["error_type"]) == ("fallback", "timeout")
    breaker, calls = _value(_cell(executed, "before = len(server.requests)"))
    assert breaker["error_type"] == "circuit_open" and calls["requests sent to the model"] == 0
    tool = run("divided by 0")
    assert (tool["status"], tool["error_type"]) == ("failed", "tool_error")


def test_metrics_and_plots(executed: dict[str, Any]) -> None:
    stats = _value(_cell(executed, "summary(Context.from_env())"))
    assert stats["rates"]["fallback"] > 0 and stats["rates"]["cache_hit"] > 0
    assert set(stats["usage_by_model"]) == {"gpt-4o-mini", "gpt-4o"}
    plots = _cell(executed, "plt.show()")
    assert any("image/png" in o.get("data", {}) for o in plots["outputs"])


def test_the_server_is_stopped_and_the_data_deleted(executed: dict[str, Any]) -> None:
    assert _value(_cell(executed, "cleanup.close()")) == {
        "server stopped": True,
        "environment restored": True,
        "temporary CRANE_HOME deleted": True,
    }
    assert not list((executed["tmp"] / "tmp").glob("crane-walkthrough-*"))


def test_the_committed_outputs_are_from_a_clean_run() -> None:
    """The notebook is committed executed (GitHub shows its outputs), in order, without errors."""
    notebook = nbformat.read(WALKTHROUGH, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c["cell_type"] == "code"]
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1))
    for cell in code:
        assert all(o["output_type"] != "error" for o in cell["outputs"]), cell["source"]
        assert "/tmp/" not in _text(cell), cell["source"]
