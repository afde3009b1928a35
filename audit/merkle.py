"""Merkle trees as Certificate Transparency builds them (RFC 6962 / RFC 9162 section 2.1).

Pure functions over bytes, no Django: leaf and node hashes with their domain-separation
prefixes, the tree head, inclusion proofs and their verification. A block seals its records'
leaves with `root`; `inclusion_proof` proves one record is in it; `root_from_proof` is what a
verifier runs, offline, in any language (see docs/audit-proofs.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """HASH(0x00 || entry)."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """HASH(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    """Every level of the tree, leaves first, root last.

    Pairing left to right and lifting an odd last node unchanged gives exactly RFC 6962's tree
    (split at the largest power of two below n): tested against the recursive definition.
    """
    if not leaves:
        return [[EMPTY_ROOT]]
    tree = [list(leaves)]
    while len(tree[-1]) > 1:
        below = tree[-1]
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        tree.append(above)
    return tree


def root(leaves: Sequence[bytes]) -> bytes:
    """The Merkle tree hash of the leaf hashes."""
    return levels(leaves)[-1][0]


def inclusion_proof(index: int, tree: list[list[bytes]]) -> list[bytes]:
    """The audit path of leaf `index` (RFC 6962 PATH), from the levels of its tree."""
    if not 0 <= index < len(tree[0]):
        raise IndexError(f"leaf {index} is not in a tree of {len(tree[0])} leaves")
    path = []
    for level in tree[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        index >>= 1
    return path


def root_from_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2), or None when it cannot be valid.

    The proof holds when the result equals the block's Merkle root.
    """
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf
    for sibling in proof:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            node = node_hash(node, sibling)
        fn >>= 1
        sn >>= 1
    return node if sn == 0 else None
