"""The audit trail: append-only records, sealed into hash-chained blocks of Merkle trees.

A record is written by the service that makes a change, inside that change's transaction. A
sealer (a Celery beat task, or `manage.py audit_seal`) later takes the unsealed records in
sequence order, hashes them into a Merkle tree (RFC 6962) and appends a block that links to
the previous block's hash. Writers never wait for the sealer or for each other.

`Seal` says which block holds a record, and where: its primary key is the record, so a record
is sealed exactly once, and records stay untouched by sealing. All three tables are
append-only: the models refuse updates and deletes, and on PostgreSQL so do triggers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db import models

from core.canonical import canonical_json

GENESIS = "0" * 64


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs: Any) -> int:
        raise ValueError(f"{self.model._meta.verbose_name_plural} are append-only; they cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise ValueError(f"{self.model._meta.verbose_name_plural} are append-only; they cannot be deleted.")


class AppendOnly(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError(f"{self._meta.verbose_name_plural} are append-only; they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise ValueError(f"{self._meta.verbose_name_plural} are append-only; they cannot be deleted.")


class ActorKind(models.TextChoices):
    USER = "user", "User"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"


class AuditRecord(AppendOnly):
    """One thing that happened: who did what to which subject, with its canonical payload."""

    seq = models.BigAutoField(primary_key=True, verbose_name="sequence number")
    at = models.DateTimeField(db_index=True)
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_id = models.CharField(max_length=64)
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=64)
    subject_type = models.CharField(max_length=32)
    subject_id = models.CharField(max_length=64)
    agent_id = models.CharField(max_length=64, blank=True, help_text="The agent concerned, if any.")
    tool = models.CharField(max_length=128, blank=True, help_text="The tool concerned, if any.")
    payload = models.TextField(help_text="RFC 8785 canonical JSON.")
    payload_digest = models.CharField(max_length=64, help_text="Hex SHA-256 of the payload bytes.")

    class Meta:
        ordering = ["-seq"]
        # Every index slows the decision path's insert: these serve the trail's filters, nothing more
        # (declared here rather than with db_index, which adds a second LIKE index per text column
        # on PostgreSQL).
        indexes = [
            models.Index(fields=["subject_type", "subject_id"], name="audit_record_subject"),
            # Pattern operators: serves `action = x` and the prefix filter `action LIKE 'tool_call.%'`
            # whatever the database collation (PostgreSQL; other databases ignore opclasses).
            models.Index(fields=["action"], name="audit_record_action", opclasses=["varchar_pattern_ops"]),
            models.Index(fields=["agent_id"], name="audit_record_agent"),
            models.Index(fields=["tool"], name="audit_record_tool"),
        ]
        verbose_name = "audit record"

    def __str__(self) -> str:
        return f"#{self.seq} {self.action} by {self.actor_label}"

    def entry(self) -> bytes:
        """The bytes a Merkle leaf hashes: every field, the payload by its digest (canonical JSON)."""
        return entry_bytes(
            seq=self.seq,
            at=self.at,
            actor={"kind": self.actor_kind, "id": self.actor_id, "label": self.actor_label},
            action=self.action,
            subject={"type": self.subject_type, "id": self.subject_id},
            agent_id=self.agent_id,
            tool=self.tool,
            payload_digest=self.payload_digest,
        )


def timestamp(at: dt.datetime) -> str:
    """UTC, microseconds, `Z`: one spelling of a time for every hash."""
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_bytes(
    *,
    seq: int,
    at: dt.datetime,
    actor: dict[str, str],
    action: str,
    subject: dict[str, str],
    agent_id: str,
    tool: str,
    payload_digest: str,
) -> bytes:
    return canonical_json(
        {
            "seq": seq,
            "at": timestamp(at),
            "actor": actor,
            "action": action,
            "subject": subject,
            "agent_id": agent_id,
            "tool": tool,
            "payload_sha256": payload_digest,
        }
    )


class Block(AppendOnly):
    """A sealed batch of records: Merkle root over their leaves, chained to the previous block."""

    height = models.PositiveBigIntegerField(primary_key=True)
    sealed_at = models.DateTimeField()
    size = models.PositiveIntegerField(help_text="How many records the block seals.")
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    merkle_root = models.CharField(max_length=64)
    previous_hash = models.CharField(max_length=64)
    block_hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["-height"]

    def __str__(self) -> str:
        return f"block {self.height} ({self.size} records)"

    def header(self) -> dict[str, Any]:
        return block_header(
            height=self.height,
            sealed_at=self.sealed_at,
            size=self.size,
            first_seq=self.first_seq,
            last_seq=self.last_seq,
            merkle_root=self.merkle_root,
            previous_hash=self.previous_hash,
        )


def block_header(
    *,
    height: int,
    sealed_at: dt.datetime,
    size: int,
    first_seq: int,
    last_seq: int,
    merkle_root: str,
    previous_hash: str,
) -> dict[str, Any]:
    """What a block hash covers; block_hash = SHA-256 of its canonical JSON."""
    return {
        "version": 1,
        "height": height,
        "sealed_at": timestamp(sealed_at),
        "size": size,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "merkle_root": merkle_root,
        "previous_hash": previous_hash,
    }


class Seal(AppendOnly):
    """Record `record` is leaf `leaf_index` of `block`: at most one seal per record."""

    # No database foreign key to the record: a record deleted behind Warden's back must show up
    # in verification (a seal without its record), not make the seal disappear with it.
    record = models.OneToOneField(
        AuditRecord, primary_key=True, on_delete=models.DO_NOTHING, db_constraint=False, related_name="seal"
    )
    # Indexed by the unique (block, leaf_index) constraint below.
    block = models.ForeignKey(Block, on_delete=models.PROTECT, related_name="seals", db_index=False)
    leaf_index = models.PositiveIntegerField()
    leaf_hash = models.CharField(max_length=64, help_text="RFC 6962 leaf hash of the record's entry, as sealed.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["block", "leaf_index"], name="audit_seal_one_leaf_per_index")]

    def __str__(self) -> str:
        return f"record {self.record_id} in block {self.block_id} at {self.leaf_index}"
