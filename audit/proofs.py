"""Inclusion proofs: everything an auditor needs to check one record offline.

The document holds the record (its fields and canonical payload), the record's leaf index,
the RFC 6962 audit path, and the block header with its hash. To verify, with nothing but
SHA-256 (see docs/audit-proofs.md for the same in 30 lines of stdlib Python):

1. payload_sha256 = SHA-256(payload bytes); entry = RFC 8785 JSON of the record's `entry`.
2. leaf = SHA-256(0x00 || entry); fold the audit path (RFC 9162 2.1.3.2) to a root.
3. root == block.merkle_root; block_hash == SHA-256(RFC 8785 JSON of the block header).
4. Optionally: the block hash is the one published in your archive or SIEM (the chain head).
"""

from __future__ import annotations

import json
from typing import Any

from audit import merkle
from audit.models import AuditRecord, Block, Seal, timestamp


class NotSealed(LookupError):
    """The record is not in a block yet."""


def record_document(record: AuditRecord) -> dict[str, Any]:
    return {
        "seq": record.seq,
        "at": timestamp(record.at),
        "actor": {"kind": record.actor_kind, "id": record.actor_id, "label": record.actor_label},
        "action": record.action,
        "subject": {"type": record.subject_type, "id": record.subject_id},
        "agent_id": record.agent_id,
        "tool": record.tool,
        "payload": record.payload,
        "payload_sha256": record.payload_digest,
    }


def block_document(block: Block) -> dict[str, Any]:
    return {"header": block.header(), "block_hash": block.block_hash}


def proof_document(record: AuditRecord, tree: list[list[bytes]] | None = None) -> dict[str, Any]:
    """The proof for one sealed record; `tree` (the block's levels) saves work across a block."""
    try:
        seal = record.seal
    except Seal.DoesNotExist:
        raise NotSealed(f"Record {record.seq} is not sealed yet.") from None
    block = seal.block
    if tree is None:
        tree = block_tree(block)
    return {
        "record": record_document(record),
        "leaf_index": seal.leaf_index,
        "leaf_hash": seal.leaf_hash,
        "audit_path": [node.hex() for node in merkle.inclusion_proof(seal.leaf_index, tree)],
        "tree_size": block.size,
        "block": block_document(block),
    }


def block_tree(block: Block) -> list[list[bytes]]:
    leaves = Seal.objects.filter(block=block).order_by("leaf_index").values_list("leaf_hash", flat=True)
    return merkle.levels([bytes.fromhex(leaf) for leaf in leaves])


def payload_of(record: AuditRecord) -> Any:
    return json.loads(record.payload)
