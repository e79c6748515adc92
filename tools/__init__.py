"""Crane's tools: a safe calculator and a per-user todo store, as LangChain tools."""
