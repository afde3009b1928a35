"""Wrappers that govern the tools of agent frameworks (installed as optional extras)."""
