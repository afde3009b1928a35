"""Agent API keys: `wdn_<prefix>_<secret>`.

The prefix (12 characters) finds the credential with one indexed lookup; the secret
(40 base-62 characters, about 238 bits) is never stored, only the SHA-256 of the whole key.
A fast hash is right here: unlike passwords, these keys are random and too long to guess,
and the check sits on every agent request (see docs/decisions/0002-api-key-hashing.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^wdn_(?P<prefix>[a-z0-9]{12})_(?P<secret>[A-Za-z0-9]{40})$")
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class GeneratedKey:
    """A new key: the plaintext (shown once), its lookup prefix and the hash to store."""

    key: str
    prefix: str
    secret_hash: str


def hash_key(key: str) -> str:
    """The stored form of a key: hex SHA-256."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> GeneratedKey:
    """A fresh random key from the operating system's CSPRNG."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(12))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    key = f"wdn_{prefix}_{secret}"
    return GeneratedKey(key=key, prefix=prefix, secret_hash=hash_key(key))


def parse_prefix(key: str) -> str | None:
    """The prefix of a well-formed key, or None when the key is malformed."""
    match = KEY_PATTERN.fullmatch(key)  # `$` alone would accept a trailing newline
    return match.group("prefix") if match else None


def key_matches(key: str, secret_hash: str) -> bool:
    """Constant-time comparison of a presented key with a stored hash."""
    return hmac.compare_digest(hash_key(key), secret_hash)
