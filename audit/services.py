"""Writing the trail: one record per change, inside the transaction that makes the change.

Services call `append` from within their `transaction.atomic()` block, so the record commits or
rolls back with the change it describes. The decision hot path writes its tool call and its
record in one statement instead (`policy.decisions`), through `prepare`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import rfc8785
from django.db import connections, router
from django.utils import timezone

from audit.models import AuditRecord
from core.actors import Actor
from core.canonical import canonical_json

_SAFE_INT = 2**53 - 1


@dataclass(frozen=True)
class Prepared:
    """An audit row ready to insert: column name -> value (no sequence number yet)."""

    columns: dict[str, Any]


def prepare(
    *,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: Any,
    agent_id: str | None = None,
    tool: str | None = None,
    at: dt.datetime | None = None,
) -> Prepared:
    payload_bytes = canonical_payload(payload)
    return Prepared(
        {
            "at": at or timezone.now(),
            "actor_kind": actor.kind,
            "actor_id": actor.id[:64],
            "actor_label": actor.label[:200],
            "action": action,
            "subject_type": subject_type,
            "subject_id": str(subject_id),
            "agent_id": str(agent_id or ""),
            "tool": tool or "",
            "payload": payload_bytes.decode("utf-8"),
            "payload_digest": hashlib.sha256(payload_bytes).hexdigest(),
        }
    )


def append(
    *,
    actor: Actor,
    action: str,
    subject_type: str,
    subject_id: str,
    payload: Any,
    agent_id: str | None = None,
    tool: str | None = None,
    at: dt.datetime | None = None,
) -> AuditRecord:
    """Append one record. Call it inside the transaction of the change it records."""
    connection = connections[router.db_for_write(AuditRecord)]
    if not connection.in_atomic_block:
        raise RuntimeError("audit.append must run inside the transaction of the change it records")
    prepared = prepare(
        actor=actor,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        payload=payload,
        agent_id=agent_id,
        tool=tool,
        at=at,
    )
    record = AuditRecord(**prepared.columns)
    record.save(force_insert=True)
    return record


def canonical_payload(payload: Any) -> bytes:
    """RFC 8785 bytes of a payload. Integers JSON numbers cannot carry exactly become strings."""
    try:
        return canonical_json(payload)
    except rfc8785.CanonicalizationError:
        return canonical_json(_exact(payload))


def _exact(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int) and not -_SAFE_INT <= value <= _SAFE_INT:
        return str(value)
    if isinstance(value, dict):
        return {str(key): _exact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(item) for item in value]
    return value
