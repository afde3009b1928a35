"""The Merkle tree against RFC 6962's own recursive definitions, and proofs that cannot lie."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from audit import merkle


def mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 2.1: MTH, split at the largest power of two smaller than n (leaves are leaf hashes)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 2.1.1: PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return [*path(m, leaves[:k]), mth(leaves[k:])]
    return [*path(m - k, leaves[k:]), mth(leaves[:k])]


def hashes(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"record {i}".encode()) for i in range(n)]


def test_known_vectors():
    # Hashing with the RFC 6962 prefixes, not plain SHA-256 of the data.
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    one = merkle.leaf_hash(b"a")
    assert merkle.root([one]) == one
    two = merkle.leaf_hash(b"b")
    assert merkle.root([one, two]) == hashlib.sha256(b"\x01" + one + two).digest()


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=1, max_value=70))
def test_root_and_every_proof_match_the_rfc_definitions(n):
    leaves = hashes(n)
    tree = merkle.levels(leaves)
    assert merkle.root(leaves) == mth(leaves)
    for index in range(n):
        proof = merkle.inclusion_proof(index, tree)
        assert proof == path(index, leaves)
        assert merkle.root_from_proof(index, n, leaves[index], proof) == mth(leaves)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2, max_value=40), st.data())
def test_a_proof_never_verifies_the_wrong_leaf_index_or_path(n, data):
    # The tree size is bound by the block header (hashed into the block hash), not by the proof.
    leaves = hashes(n)
    tree = merkle.levels(leaves)
    root = merkle.root(leaves)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = merkle.inclusion_proof(index, tree)
    other = data.draw(st.integers(min_value=0, max_value=n - 1).filter(lambda i: i != index))
    assert merkle.root_from_proof(other, n, leaves[index], proof) != root
    assert merkle.root_from_proof(index, n, merkle.leaf_hash(b"forged"), proof) != root
    if proof:
        position = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bent = [*proof[:position], hashlib.sha256(proof[position]).digest(), *proof[position + 1 :]]
        assert merkle.root_from_proof(index, n, leaves[index], bent) != root
        assert merkle.root_from_proof(index, n, leaves[index], proof[:-1]) != root
    assert merkle.root_from_proof(n, n, leaves[index], proof) is None
