"""Verify Warden's decision tokens on the tool server, so the tool need not trust the agent.

A decision token is an EdDSA (Ed25519) JWT that Warden signs for an allowed call: `aud` is the
tool, `jti` the call id, `args_sha256` the SHA-256 of the RFC 8785 canonical arguments. A tool
server checks it against Warden's public keys (/.well-known/jwks.json) and the arguments it was
actually sent, so an agent cannot reuse an allow for another tool or other arguments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx
import jwt
import rfc8785

from warden_sdk.errors import InvalidDecisionToken

__all__ = ["arguments_digest", "fetch_jwks", "verify_decision_token"]

ISSUER = "warden"
ALGORITHM = "EdDSA"


def arguments_digest(arguments: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the RFC 8785 canonical arguments: the bytes Warden hashed when it decided."""
    return hashlib.sha256(rfc8785.dumps(dict(arguments))).hexdigest()


def fetch_jwks(base_url: str, *, timeout: float = 10.0) -> dict[str, Any]:
    """Warden's public keys. Cache them (Warden says max-age 300) rather than fetching per call."""
    response = httpx.get(f"{base_url.rstrip('/')}/.well-known/jwks.json", timeout=timeout)
    response.raise_for_status()
    jwks: dict[str, Any] = response.json()
    return jwks


def verify_decision_token(
    token: str, jwks: Mapping[str, Any], tool: str, arguments: Mapping[str, Any], *, leeway: float = 0.0
) -> dict[str, Any]:
    """The token's claims if Warden allowed exactly this call; `InvalidDecisionToken` otherwise.

    Checks the signature against the key named by `kid`, the issuer, expiry (with `leeway`
    seconds for clock skew), that the audience is `tool`, and that `args_sha256` matches the
    canonical digest of `arguments`.
    """
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        jwk = next((key for key in jwks.get("keys", ()) if key.get("kid") == kid), None)
        if jwk is None:
            raise InvalidDecisionToken(f"No key {kid!r} in the JWKS: refresh it from /.well-known/jwks.json.")
        public_key = jwt.PyJWK(dict(jwk), algorithm=ALGORITHM).key
        claims: dict[str, Any] = jwt.decode(
            token,
            public_key,
            algorithms=[ALGORITHM],
            audience=tool,
            issuer=ISSUER,
            leeway=leeway,
            options={"require": ["exp", "aud", "iss", "jti", "args_sha256"]},
        )
    except jwt.InvalidTokenError as error:
        raise InvalidDecisionToken(f"The decision token is not valid for {tool}: {error}") from error
    if claims["args_sha256"] != arguments_digest(arguments):
        raise InvalidDecisionToken("The arguments are not the ones Warden decided on.")
    return claims
