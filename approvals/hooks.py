"""Where higher layers hear how a review they asked for was settled, without approvals importing them.

Guardians (guardian/) open reviews through `approvals.services.open_review` and register here
in their `AppConfig.ready()` to act on the outcome: a rejected review confirms the concern.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from approvals.models import Approval
    from core.actors import Actor

ReviewHandler = Callable[["Approval", "Actor"], None]

_review_handlers: list[ReviewHandler] = []


def on_review_settled(handler: ReviewHandler) -> ReviewHandler:
    """Register `handler(approval, actor)`, run inside the transaction that settles a review."""
    if handler not in _review_handlers:
        _review_handlers.append(handler)
    return handler


def review_settled(approval: Approval, actor: Actor) -> None:
    for handler in _review_handlers:
        handler(approval, actor)
