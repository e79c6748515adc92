"""The graph `langgraph dev` serves (`langgraph.json` -> `graph.server:graph`).

It lives in its own module, rather than as `graph.builder.graph`, so that importing the builder
never builds a runtime as a side effect: only the server imports this. It is compiled without a
checkpointer or store, because the server refuses graphs that bring their own and injects its own.
`breakers` is the server's circuit-breaker board, shared by every run it serves, kept here so
the server's own endpoints can report it (`breakers.snapshot()`).
"""

from __future__ import annotations

from graph.builder import build_graph
from graph.context import Context
from graph.services import make_breaker_board

breakers = make_breaker_board(Context.from_env())
graph = build_graph(breakers=breakers)
