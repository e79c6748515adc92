"""Shared fixtures: every test runs offline, with its own data directory and no tracing."""

from __future__ import annotations

import os
from pathlib import Path

import langsmith.utils
import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep tests off the network and out of ~/.crane, whatever the caller's environment holds."""
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    # Every LangSmith setting goes (endpoint, key, project...), then every name the SDK reads
    # to turn tracing on says no: it checks the *_V2 and LANGSMITH_* names first.
    for var in [v for v in os.environ if v.startswith(("LANGSMITH_", "LANGCHAIN_"))]:
        monkeypatch.delenv(var)
    for var in (
        "LANGSMITH_TRACING_V2",
        "LANGSMITH_TRACING",
        "LANGCHAIN_TRACING_V2",
        "LANGCHAIN_TRACING",
    ):
        monkeypatch.setenv(var, "false")
    # The SDK caches what it read of these per process: read them again, as set here.
    langsmith.utils.get_env_var.cache_clear()
    for var in [v for v in os.environ if v.startswith("CRANE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("CRANE_HOME", str(tmp_path / "crane-home"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
