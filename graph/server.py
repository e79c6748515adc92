"""The graph `langgraph dev` serves (`langgraph.json` -> `graph.server:graph`).

It lives in its own module, rather than as `graph.builder.graph`, so that importing the builder
never builds a runtime as a side effect: only the server imports this. It is compiled without a
checkpointer or store, because the server refuses graphs that bring their own and injects its own.
"""

from __future__ import annotations

from graph.builder import build_graph

graph = build_graph()
