"""Crane: an agent runtime on LangGraph that plans tool calls, validates, runs and records them.

`from graph import build_graph` works without importing the builder eagerly: importing a node
module imports `graph.state`, which runs this file, which must not import the builder (which
imports the half-loaded node module).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graph.builder import build_graph

__all__ = ["build_graph"]


def __getattr__(name: str) -> Any:
    """Import `build_graph` on first use (PEP 562)."""
    if name == "build_graph":
        from graph.builder import build_graph

        return build_graph
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
