"""Version counters that tell every process when its cached view of the database is stale.

`bump("policy")` runs inside the transaction of each change to what the policy snapshot holds;
the counter row's lock orders concurrent changes, so versions follow commit order. Readers
compare `current("policy")` with the version they built from. A process also learns of its
own commits at once through `on_bump` listeners (called after commit), so it never serves a
snapshot older than a change it made itself.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import F

from core.models import Revision

POLICY = "policy"

_listeners: dict[str, list[Callable[[], None]]] = {}


def bump(name: str) -> None:
    """Move the counter forward in the current transaction; listeners hear of it after commit."""
    updated = Revision.objects.filter(name=name).update(value=F("value") + 1)
    if not updated:
        # First change ever: create the row (a concurrent creator loses the race and retries as an update).
        _, created = Revision.objects.get_or_create(name=name, defaults={"value": 1})
        if not created:
            Revision.objects.filter(name=name).update(value=F("value") + 1)
    for listener in _listeners.get(name, []):
        transaction.on_commit(listener)


def current(name: str) -> int:
    """The counter's committed value (0 before the first change)."""
    value = Revision.objects.filter(name=name).values_list("value", flat=True).first()
    return int(value or 0)


def on_bump(name: str, listener: Callable[[], None]) -> None:
    """Call `listener` in this process after every committed bump of `name` made here."""
    _listeners.setdefault(name, []).append(listener)
