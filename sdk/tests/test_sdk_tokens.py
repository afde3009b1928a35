"""verify_decision_token with a locally generated Ed25519 key, signed the way Warden signs."""

from __future__ import annotations

import base64
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from warden_sdk import InvalidDecisionToken, arguments_digest, verify_decision_token

ARGUMENTS = {"account": "DE89370400440532013000", "amount": 2500.5, "currency": "EUR", "note": "Grüße 🚀"}


def _jwks_and_key(kid: str = "key-1") -> tuple[dict[str, Any], Ed25519PrivateKey]:
    private = Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    return {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}]}, private


def _token(private: Ed25519PrivateKey, *, kid: str = "key-1", **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": "warden",
        "sub": "agent-1",
        "aud": "payments.transfer",
        "jti": "call-1",
        "iat": now,
        "exp": now + 60,
        "args_sha256": arguments_digest(ARGUMENTS),
        "policy_version": 3,
        **claims,
    }
    return jwt.encode(payload, private, algorithm="EdDSA", headers={"kid": kid})


def test_a_token_for_this_tool_and_these_arguments_verifies() -> None:
    jwks, private = _jwks_and_key()
    claims = verify_decision_token(_token(private), jwks, "payments.transfer", dict(ARGUMENTS))
    assert claims["jti"] == "call-1"


def test_key_order_does_not_matter_canonical_json_does() -> None:
    jwks, private = _jwks_and_key()
    reordered = dict(reversed(list(ARGUMENTS.items())))
    assert verify_decision_token(_token(private), jwks, "payments.transfer", reordered)


@pytest.mark.parametrize(
    ("tool", "arguments", "claims", "message"),
    [
        ("payments.transfer", {**ARGUMENTS, "amount": 250000}, {}, "not the ones Warden decided on"),
        ("payments.refund", ARGUMENTS, {}, "Audience"),
        ("payments.transfer", ARGUMENTS, {"exp": int(time.time()) - 5}, "expired"),
        ("payments.transfer", ARGUMENTS, {"iss": "someone-else"}, "issuer"),
    ],
    ids=["tampered-arguments", "other-tool", "expired", "other-issuer"],
)
def test_a_token_for_anything_else_is_refused(
    tool: str, arguments: dict[str, Any], claims: dict[str, Any], message: str
) -> None:
    jwks, private = _jwks_and_key()
    with pytest.raises(InvalidDecisionToken, match=message):
        verify_decision_token(_token(private, **claims), jwks, tool, arguments)


def test_a_token_signed_by_another_key_is_refused() -> None:
    jwks, _ = _jwks_and_key()
    _, stranger = _jwks_and_key()
    with pytest.raises(InvalidDecisionToken, match="Signature"):
        verify_decision_token(_token(stranger), jwks, "payments.transfer", ARGUMENTS)


def test_a_token_naming_an_unknown_key_asks_for_a_fresh_jwks() -> None:
    jwks, private = _jwks_and_key()
    with pytest.raises(InvalidDecisionToken, match="refresh it"):
        verify_decision_token(_token(private, kid="rotated"), jwks, "payments.transfer", ARGUMENTS)


def test_garbage_is_refused_as_an_invalid_token() -> None:
    jwks, _ = _jwks_and_key()
    with pytest.raises(InvalidDecisionToken):
        verify_decision_token("not.a.token", jwks, "payments.transfer", ARGUMENTS)
