"""Audit trail documents: records (with seal status), blocks, proofs."""

from __future__ import annotations

import json
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from audit.models import AuditRecord, Block, Seal
from audit.sensitive import redact


class AuditRecordSerializer(serializers.ModelSerializer[AuditRecord]):
    actor = serializers.SerializerMethodField()
    subject = serializers.SerializerMethodField()
    payload = serializers.SerializerMethodField()
    seal = serializers.SerializerMethodField()

    class Meta:
        model = AuditRecord
        fields = ["seq", "at", "actor", "action", "subject", "agent_id", "tool", "payload", "payload_digest", "seal"]
        read_only_fields = fields

    @extend_schema_field({"type": "object", "properties": {"kind": {}, "id": {}, "label": {}}})
    def get_actor(self, record: AuditRecord) -> dict[str, str]:
        return {"kind": record.actor_kind, "id": record.actor_id, "label": record.actor_label}

    @extend_schema_field({"type": "object", "properties": {"type": {}, "id": {}}})
    def get_subject(self, record: AuditRecord) -> dict[str, str]:
        return {"type": record.subject_type, "id": record.subject_id}

    @extend_schema_field({"type": "object", "description": "The payload, sensitive values shown as a marker."})
    def get_payload(self, record: AuditRecord) -> Any:
        return redact(json.loads(record.payload))

    @extend_schema_field(
        {
            "type": "object",
            "nullable": True,
            "description": "null until sealed; then the block and the record's leaf index in it.",
            "properties": {"block": {"type": "integer"}, "leaf_index": {"type": "integer"}},
        }
    )
    def get_seal(self, record: AuditRecord) -> dict[str, int] | None:
        try:
            seal = record.seal
        except Seal.DoesNotExist:
            return None
        return {"block": seal.block_id, "leaf_index": seal.leaf_index}


class BlockSerializer(serializers.ModelSerializer[Block]):
    class Meta:
        model = Block
        fields = ["height", "sealed_at", "size", "first_seq", "last_seq", "merkle_root", "previous_hash", "block_hash"]
        read_only_fields = fields


class ProofSerializer(serializers.Serializer[Any]):
    """Documented shape of GET /api/v1/audit/records/<seq>/proof (see audit.proofs)."""

    record = serializers.DictField(help_text="The record's fields; `payload` is the canonical JSON text as sealed.")
    leaf_index = serializers.IntegerField()
    leaf_hash = serializers.CharField()
    audit_path = serializers.ListField(child=serializers.CharField(), help_text="RFC 6962 audit path, hex.")
    tree_size = serializers.IntegerField()
    block = serializers.DictField(help_text="`header` (what block_hash covers) and `block_hash`.")
