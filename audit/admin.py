"""The audit trail in the admin: records and blocks, read-only for everyone.

Nobody adds, changes or deletes audit rows here (the models refuse it anyway); users with the
view permission (auditors, Warden admins) read them. Payloads are shown with sensitive values
redacted; the trail page (/audit/) verifies a record's proof in the browser.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from audit.models import AuditRecord, Block, Seal
from audit.sensitive import redact
from core.admin import ReadOnlyAdminMixin


def _seal_of(record: AuditRecord) -> Seal | None:
    try:
        return record.seal
    except Seal.DoesNotExist:
        return None


def _short(digest: str) -> str:
    return format_html('<code class="wd-short-hash" title="{}">{}…</code>', digest, digest[:12])


def _short_id(value: str) -> str:
    """Long ids (UUIDs) cut to their first eight characters in lists; the whole id on hover."""
    if len(value) <= 12:
        return format_html('<code class="wd-slug">{}</code>', value)
    return format_html('<code class="wd-slug" title="{}">{}…</code>', value, value[:8])


class ReadOnlyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Viewing only: the trail is append-only, and only Warden's services append to it."""


class SealedFilter(admin.SimpleListFilter):
    """Sealed into a block yet, or still waiting for the sealer."""

    title = "seal"
    parameter_name = "sealed"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Sealed"), ("no", "Pending")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
        if self.value() == "yes":
            return queryset.filter(seal__isnull=False)
        if self.value() == "no":
            return queryset.filter(seal__isnull=True)
        return queryset


class BlockFilter(admin.SimpleListFilter):
    """The records of one block (linked from the block's page); listed only while it is applied."""

    title = "block"
    parameter_name = "block"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, f"block {value}")] if value and value.isdigit() else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[AuditRecord]) -> QuerySet[AuditRecord]:
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(seal__block_id=int(value))
        return queryset


@admin.register(AuditRecord)
class AuditRecordAdmin(ReadOnlyAdmin):
    """Every audit record, newest first, with its seal status."""

    list_display = ["seq", "at", "actor", "action", "subject", "agent", "tool", "seal_status"]
    list_display_links = ["seq"]
    list_filter = ["action", "actor_kind", "subject_type", SealedFilter, BlockFilter]
    list_select_related = ["seal"]
    date_hierarchy = "at"
    search_fields = ["actor_label", "actor_id", "subject_id", "agent_id", "tool"]
    show_full_result_count = False  # a COUNT(*) of a long trail on every search is not worth it
    fields = [
        "seq",
        "at",
        "actor",
        "action",
        "subject",
        "agent_id",
        "tool",
        "payload_pretty",
        "payload_digest",
        "seal_details",
        "verify",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="Actor", ordering="actor_label")
    def actor(self, record: AuditRecord) -> str:
        return format_html('{} <span class="wd-kind">{}</span>', record.actor_label, record.actor_kind)

    @admin.display(description="Subject", ordering="subject_type")
    def subject(self, record: AuditRecord) -> str:
        return format_html("{}&nbsp;{}", record.subject_type, _short_id(record.subject_id))

    @admin.display(description="Agent id", ordering="agent_id")
    def agent(self, record: AuditRecord) -> str:
        return _short_id(record.agent_id) if record.agent_id else "—"

    @admin.display(description="Seal")
    def seal_status(self, record: AuditRecord) -> str:
        seal = _seal_of(record)
        if seal is None:
            return format_html('<span class="wd-badge wd-seal-pending">{}</span>', "pending")
        return format_html('<span class="wd-badge wd-seal-sealed">block {}</span>', seal.block_id)

    @admin.display(description="Payload")
    def payload_pretty(self, record: AuditRecord) -> str:
        try:
            document = json.loads(record.payload)
        except ValueError:
            return format_html(
                '<p class="wd-warning">{}</p>', "Not valid JSON: the payload was changed after it was written."
            )
        return format_html(
            '<pre class="wd-schema">{}</pre>', json.dumps(redact(document), indent=2, ensure_ascii=False)
        )

    @admin.display(description="Sealed in")
    def seal_details(self, record: AuditRecord) -> str:
        seal = _seal_of(record)
        if seal is None:
            return "Not yet: the sealer takes new records within seconds."
        block_url = reverse("admin:audit_block_change", args=[seal.block_id])
        return format_html(
            '<a href="{}">block {}</a>, leaf {}<br><span class="wd-hash-full">leaf hash {}</span>',
            block_url,
            seal.block_id,
            seal.leaf_index,
            seal.leaf_hash,
        )

    @admin.display(description="Verify")
    def verify(self, record: AuditRecord) -> str:
        url = f"{reverse('telemetry:audit-trail')}?seq={record.seq}#verify-{record.seq}"
        if _seal_of(record) is None:
            return format_html('<a href="{}">{}</a>', url, "Open in the audit trail (verifiable once sealed)")
        return format_html('<a class="button" href="{}">{}</a>', url, "Verify in the audit trail")


@admin.register(Block)
class BlockAdmin(ReadOnlyAdmin):
    """Sealed blocks, newest first: the Merkle root of their records and the link to the block before."""

    list_display = ["height", "sealed_at", "size", "seq_range", "root", "previous", "hash"]
    date_hierarchy = "sealed_at"
    fields = [
        "height",
        "sealed_at",
        "size",
        "seq_range",
        "merkle_root",
        "previous_hash",
        "block_hash",
        "records",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="Records (seq)")
    def seq_range(self, block: Block) -> str:
        return f"{block.first_seq}\u2013{block.last_seq}"  # en dash

    @admin.display(description="Merkle root")
    def root(self, block: Block) -> str:
        return _short(block.merkle_root)

    @admin.display(description="Previous hash")
    def previous(self, block: Block) -> str:
        return _short(block.previous_hash)

    @admin.display(description="Block hash")
    def hash(self, block: Block) -> str:
        return _short(block.block_hash)

    @admin.display(description="Records")
    def records(self, block: Block) -> str:
        url = f"{reverse('admin:audit_auditrecord_changelist')}?block={block.height}"
        return format_html('<a href="{}">The {} records sealed in this block</a>', url, block.size)
