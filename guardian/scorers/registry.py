"""Scorers found by name: `@register` a class, `get(name)` an instance (one per process)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from guardian.scorers.base import Scorer

_factories: dict[str, Callable[[], Scorer]] = {}
_instances: dict[str, Scorer] = {}
_lock = threading.Lock()

T = TypeVar("T", bound=type)


def register(cls: T) -> T:
    """Register a scorer class under its `name` (a class decorator)."""
    name = cls.name  # type: ignore[attr-defined]
    if not name:
        raise ValueError(f"{cls.__name__} has no name.")
    _factories[name] = cls
    return cls


def names() -> list[str]:
    _load_builtins()
    return sorted(_factories)


def get(name: str) -> Scorer:
    """The process's instance of scorer `name`; KeyError naming the known ones otherwise."""
    _load_builtins()
    scorer = _instances.get(name)
    if scorer is not None:
        return scorer
    with _lock:
        scorer = _instances.get(name)
        if scorer is None:
            try:
                factory = _factories[name]
            except KeyError:
                raise KeyError(f"No scorer is named {name!r}; known: {', '.join(sorted(_factories))}.") from None
            scorer = _instances[name] = factory()
    return scorer


def reset() -> None:
    """Forget the instances (tests; settings changes). The SLM scorer releases its model on `close()`."""
    with _lock:
        for scorer in _instances.values():
            close = getattr(scorer, "close", None)
            if close is not None:
                close()
        _instances.clear()


def _load_builtins() -> None:
    # Importing the modules registers their classes.
    from guardian.scorers import behaviour, classifier, content, slm  # noqa: F401
