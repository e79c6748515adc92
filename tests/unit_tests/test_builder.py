from __future__ import annotations

from pathlib import Path

from langgraph.pregel import Pregel

from graph import build_graph
from graph.builder import NODES

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph.mmd"

EXPECTED_EDGES = {
    ("__start__", "cache_lookup"),
    ("cache_lookup", "validator"),
    ("cache_lookup", "complexity_router"),
    ("cache_lookup", "history_recorder"),
    ("complexity_router", "llm_planner"),
    ("complexity_router", "pattern_fallback"),
    ("llm_planner", "validator"),
    ("llm_planner", "llm_planner"),
    ("llm_planner", "pattern_fallback"),
    ("validator", "executor"),
    ("validator", "llm_planner"),
    ("validator", "pattern_fallback"),
    ("validator", "complexity_router"),
    ("validator", "history_recorder"),
    ("pattern_fallback", "validator"),
    ("pattern_fallback", "history_recorder"),
    ("executor", "history_recorder"),
    ("history_recorder", "__end__"),
}


def test_graph_compiles() -> None:
    assert isinstance(build_graph(), Pregel)


def test_node_set() -> None:
    nodes = set(build_graph().get_graph().nodes) - {"__start__", "__end__"}
    assert nodes == {
        "cache_lookup",
        "complexity_router",
        "llm_planner",
        "validator",
        "pattern_fallback",
        "executor",
        "history_recorder",
    }
    assert {n.__name__ for n in NODES} == nodes


def test_edges() -> None:
    edges = {(e.source, e.target) for e in build_graph().get_graph().edges}
    assert edges == EXPECTED_EDGES


def test_mermaid_snapshot() -> None:
    """The README's diagram is this snapshot; regenerate both together when the topology changes."""
    assert build_graph().get_graph().draw_mermaid(with_styles=False) == SNAPSHOT.read_text()


def test_importing_the_builder_builds_nothing() -> None:
    import graph.builder as builder

    assert "graph" not in vars(builder)


def test_server_graph_has_no_own_checkpointer_or_store() -> None:
    """`langgraph dev` refuses graphs compiled with their own persistence."""
    from graph.server import graph

    assert graph.checkpointer is None and graph.store is None and graph.name == "crane"


def test_readme_shows_the_current_graph() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert f"```mermaid\n{SNAPSHOT.read_text()}```" in readme
