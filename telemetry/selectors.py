"""Reads behind the telemetry pages: the audit trail, its totals, and agent names for its rows.

Each selector owns its joins, so the trail page costs the same few queries however many rows
it shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from audit.models import AuditRecord, Block
from audit.sealing import pending_count
from registry.models import Agent


@dataclass(frozen=True)
class TrailSummary:
    """How big the trail is, how much of it waits for the sealer, and the block at its head."""

    records: int
    blocks: int
    pending: int
    head: Block | None


def trail_summary() -> TrailSummary:
    """Totals for the trail page header and the latest block (the chain head), if any."""
    return TrailSummary(
        records=AuditRecord.objects.count(),
        blocks=Block.objects.count(),
        pending=pending_count(),
        head=Block.objects.order_by("-height").first(),
    )


def audit_record_list() -> QuerySet[AuditRecord]:
    """Audit records newest first, each with its seal (block and leaf index) joined."""
    return AuditRecord.objects.select_related("seal").order_by("-seq")


def agent_id_for(reference: str) -> str | None:
    """The id of the agent a person named by slug or by id; None when no agent matches.

    An id that parses as a UUID is taken as is even when no agent has it any more: the trail
    outlives the registry entries it mentions.
    """
    reference = reference.strip()
    match = Agent.objects.filter(slug=reference).values_list("pk", flat=True).first()
    if match is not None:
        return str(match)
    try:
        return str(uuid.UUID(reference))
    except ValueError:
        return None


def agent_slugs(agent_ids: Iterable[str]) -> dict[str, str]:
    """Agent id -> slug for the ids given, in one query; ids that are not UUIDs are skipped."""
    ids: set[uuid.UUID] = set()
    for agent_id in agent_ids:
        try:
            ids.add(uuid.UUID(agent_id))
        except (TypeError, ValueError):
            continue
    if not ids:
        return {}
    return {str(pk): slug for pk, slug in Agent.objects.filter(pk__in=ids).values_list("pk", "slug")}
