"""Decision tokens: short-lived EdDSA (Ed25519) JWTs a tool server verifies without trusting the agent.

Claims: `iss` (Warden), `sub` (agent id), `aud` (the tool name), `jti` (the tool call id),
`iat`, `exp`, `args_sha256` (SHA-256 of the RFC 8785 canonical arguments) and
`policy_version`. The key id (`kid`) is the RFC 7638 thumbprint of the public key, published
at /.well-known/jwks.json. The private key comes from WARDEN_SIGNING_KEY, or a file created
on first use (0600) next to the local database.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from core.canonical import digest as canonical_digest
from core.conf import warden_settings

ISSUER = "warden"
ALGORITHM = "EdDSA"


def arguments_digest(arguments: Any) -> str:
    """Hex SHA-256 of the canonical arguments."""
    return canonical_digest(arguments)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    kid: str
    jwk: dict[str, str]

    @classmethod
    def from_private(cls, private: Ed25519PrivateKey) -> SigningKey:
        raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        x = _b64(raw)
        # RFC 7638: the thumbprint hashes the required members in lexicographic order, no spaces.
        thumbprint = _b64(
            hashlib.sha256(
                json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True).encode()
            ).digest()
        )
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": thumbprint, "alg": ALGORITHM, "use": "sig"}
        return cls(private=private, kid=thumbprint, jwk=jwk)


_key: SigningKey | None = None
_lock = threading.Lock()


def signing_key() -> SigningKey:
    """The process's signing key (loaded once)."""
    global _key
    if _key is None:
        with _lock:
            if _key is None:
                _key = SigningKey.from_private(_load_private_key())
    return _key


def _load_private_key() -> Ed25519PrivateKey:
    pem = warden_settings.SIGNING_KEY
    if not pem:
        path = Path(warden_settings.SIGNING_KEY_FILE)
        if not path.exists():
            _create_key_file(path)
        pem = path.read_text()
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("WARDEN_SIGNING_KEY must be an Ed25519 private key in PEM (PKCS#8).")
    return key


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:  # O_EXCL: of two processes starting together, one writes and the other reads its key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def jwks() -> dict[str, list[dict[str, str]]]:
    """The public keys, as a JWK Set."""
    return {"keys": [signing_key().jwk]}


def issue(
    *, agent_id: str, tool: str, digest: str, call_id: str, policy_version: int, now: dt.datetime
) -> tuple[str, dt.datetime]:
    """A signed decision token for an allowed call, and when it expires."""
    key = signing_key()
    expires = now + dt.timedelta(seconds=warden_settings.DECISION_TOKEN_TTL_SECONDS)
    claims = {
        "iss": ISSUER,
        "sub": agent_id,
        "aud": tool,
        "jti": call_id,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "args_sha256": digest,
        "policy_version": policy_version,
    }
    return _sign(key, claims), expires.replace(microsecond=0)


_headers: dict[str, bytes] = {}


def _sign(key: SigningKey, claims: dict[str, Any]) -> str:
    """A compact JWS (RFC 7515) with EdDSA: the same bytes PyJWT would produce, without its per-call overhead.

    Verified by PyJWT in the tests; `verify` below uses PyJWT too.
    """
    header = _headers.get(key.kid)
    if header is None:
        header = _headers[key.kid] = _b64(
            json.dumps({"alg": ALGORITHM, "kid": key.kid, "typ": "JWT"}, separators=(",", ":")).encode()
        ).encode()
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode()).encode()
    signing_input = header + b"." + payload
    return (signing_input + b"." + _b64(key.private.sign(signing_input)).encode()).decode("ascii")


def verify(token: str, *, tool: str, arguments: Any, public_jwks: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a tool server does: check signature, expiry, audience (tool) and the arguments' digest."""
    keys = (public_jwks or jwks())["keys"]
    kid = jwt.get_unverified_header(token).get("kid")
    jwk = next((key for key in keys if key.get("kid") == kid), None)
    if jwk is None:
        raise jwt.InvalidTokenError(f"Unknown key id {kid!r}.")
    public = jwt.PyJWK(jwk).key
    claims: dict[str, Any] = jwt.decode(token, public, algorithms=[ALGORITHM], audience=tool, issuer=ISSUER)
    if claims.get("args_sha256") != arguments_digest(arguments):
        raise jwt.InvalidTokenError("The arguments are not the ones the decision was made for.")
    return claims
