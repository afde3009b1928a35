"""verify_audit_proof on a proof Warden's own audit code produced (fixtures/audit_proof.json, from the live API)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from warden_sdk import verify_audit_proof

PROOF: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "audit_proof.json").read_text())


def test_warden_s_proof_holds() -> None:
    verification = verify_audit_proof(PROOF)
    assert verification.holds
    assert bool(verification)
    assert verification.failed == ()


def test_the_published_block_hash_must_match_when_given() -> None:
    assert verify_audit_proof(PROOF, block_hash=PROOF["block"]["block_hash"]).holds
    assert verify_audit_proof(PROOF, block_hash="0" * 64).failed == ("published block hash",)


def _tampered(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    proof = copy.deepcopy(PROOF)
    target = proof
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return proof


@pytest.mark.parametrize(
    ("path", "value", "failed"),
    [
        (
            ("record", "payload"),
            PROOF["record"]["payload"].replace('"allow"', '"deny"'),
            ("payload digest", "leaf hash", "inclusion in the block's Merkle root"),
        ),
        (("record", "actor", "label"), "someone-else", ("leaf hash", "inclusion in the block's Merkle root")),
        (("audit_path", 0), "00" * 32, ("inclusion in the block's Merkle root",)),
        (("leaf_index",), 3, ("inclusion in the block's Merkle root",)),
        (("block", "header", "size"), 99, ("inclusion in the block's Merkle root", "block hash")),
    ],
    ids=["payload", "record-field", "path-node", "leaf-index", "block-header"],
)
def test_any_change_breaks_the_proof(path: tuple[str | int, ...], value: Any, failed: tuple[str, ...]) -> None:
    assert verify_audit_proof(_tampered(path, value)).failed == failed
