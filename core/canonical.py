"""RFC 8785 (JCS) canonical JSON: the bytes every party hashes the same way.

Decision tokens bind the digest of the canonical arguments; audit records store their payload
canonically and seal its digest. A verifier in any language reproduces the bytes with its own
JCS implementation.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical JSON: the bytes every party hashes the same way.

    Without floats and outside the Basic Multilingual Plane, JCS is exactly Python's sorted,
    compact `json.dumps` (same key order, same escapes, integers as digits), which is four
    times faster than the general implementation; anything else goes to `rfc8785`.
    A property test holds the two to the same bytes.
    """
    if _plain(value):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return rfc8785.dumps(value)


_SAFE_INT = 2**53 - 1


def _plain(value: Any) -> bool:
    """Only dicts, lists, BMP strings, bools, None and integers RFC 8785 accepts."""
    if isinstance(value, str):
        return value.isascii() or max(value) <= "\uffff"
    if isinstance(value, bool) or value is None:
        return True
    if isinstance(value, int):
        return -_SAFE_INT <= value <= _SAFE_INT
    if isinstance(value, dict):
        return all(isinstance(key, str) and _plain(key) and _plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    return False


def digest(value: Any) -> str:
    """Hex SHA-256 of the canonical JSON of `value`."""
    return hashlib.sha256(canonical_json(value)).hexdigest()
