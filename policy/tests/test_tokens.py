"""Decision tokens and canonical JSON: standard formats, checked against the reference libraries."""

from __future__ import annotations

import datetime as dt

import jwt
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from core.canonical import canonical_json
from policy import tokens

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_canonical_json_is_rfc_8785(value):
    assert canonical_json(value) == rfc8785.dumps(value)


def test_canonical_json_edge_cases():
    for value in [{"b": 1, "a": [True, None, "é\u2028\x7f\x01"]}, {"\U0001f600": 1, "\uffff": 2}, {"n": 1.0}, 2**60]:
        try:
            expected = rfc8785.dumps(value)
        except rfc8785.CanonicalizationError:
            continue
        assert canonical_json(value) == expected


def test_tokens_verify_with_pyjwt_and_the_jwks():
    now = dt.datetime.now(dt.UTC)
    token, expires = tokens.issue(
        agent_id="a-1", tool="crm.read", digest="d" * 64, call_id="c-1", policy_version=3, now=now
    )
    key = tokens.jwks()["keys"][0]
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["EdDSA"], audience="crm.read", issuer="warden")
    assert (claims["sub"], claims["jti"], claims["args_sha256"], claims["exp"]) == (
        "a-1",
        "c-1",
        "d" * 64,
        int(expires.timestamp()),
    )
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": key["kid"], "typ": "JWT"}
