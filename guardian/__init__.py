"""Guardians: watchers that score peer agents' tool calls and outputs, and act on the scores."""
