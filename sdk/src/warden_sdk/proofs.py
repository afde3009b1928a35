"""Verify a Warden audit proof offline, with the standard library only (a port of bin/verify-audit-proof).

A proof (GET /api/v1/audit/records/<seq>/proof) holds an audit record, its RFC 9162 inclusion
path and the header of the block that sealed it. Verifying recomputes the record's leaf from
its fields, walks the path up to the block's Merkle root and hashes the header; pass the block
hash published in your archive to also tie the block to what was published.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ProofVerification", "verify_audit_proof"]

_ENTRY_FIELDS = ("seq", "at", "actor", "action", "subject", "agent_id", "tool")


@dataclass(frozen=True)
class ProofVerification:
    """Each check by name and whether it held; the proof holds when all of them do."""

    checks: tuple[tuple[str, bool], ...]

    @property
    def holds(self) -> bool:
        return all(ok for _, ok in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(name for name, ok in self.checks if not ok)

    def __bool__(self) -> bool:
        return self.holds


def verify_audit_proof(proof: Mapping[str, Any], block_hash: str | None = None) -> ProofVerification:
    """Check a proof document step by step; `block_hash` is the hash you hold from Warden's published blocks."""
    record, header = proof["record"], proof["block"]["header"]
    entry = {key: record[key] for key in _ENTRY_FIELDS}
    entry["payload_sha256"] = hashlib.sha256(record["payload"].encode()).hexdigest()
    leaf = _sha256(b"\x00" + _canonical(entry))
    path = [bytes.fromhex(node) for node in proof["audit_path"]]
    root = _root_from_path(proof["leaf_index"], header["size"], leaf, path)
    computed_block_hash = hashlib.sha256(_canonical(header)).hexdigest()
    return ProofVerification(
        checks=(
            ("payload digest", entry["payload_sha256"] == record["payload_sha256"]),
            ("leaf hash", leaf.hex() == proof["leaf_hash"]),
            ("inclusion in the block's Merkle root", root is not None and root.hex() == header["merkle_root"]),
            ("block hash", computed_block_hash == proof["block"]["block_hash"]),
            ("published block hash", block_hash in (None, computed_block_hash)),
        )
    )


def _canonical(value: Any) -> bytes:
    """RFC 8785 for what entries and block headers hold (strings and integers): sorted, compact JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _root_from_path(index: int, size: int, node: bytes, path: Sequence[bytes]) -> bytes | None:
    """The Merkle root an inclusion path leads to (RFC 9162 section 2.1.3.2), or None if the path cannot fit."""
    if index >= size:
        return None
    fn, sn = index, size - 1
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = _sha256(b"\x01" + sibling + node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = _sha256(b"\x01" + node + sibling)
        fn, sn = fn >> 1, sn >> 1
    return node if sn == 0 else None
