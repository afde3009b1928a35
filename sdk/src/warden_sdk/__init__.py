"""Warden's Python SDK: ask Warden before a tool runs, verify its decision tokens and audit proofs.

Start with `WardenClient(base_url, api_key)` and its `governed` decorator; sdk/README.md shows
the whole flow. The package never imports Django or Warden's server code: it runs inside agents.
"""

from warden_sdk.client import RetryPolicy, WardenClient, current_decision
from warden_sdk.errors import (
    ApprovalTimeout,
    InvalidDecisionToken,
    ToolCallDenied,
    WardenError,
    WardenUnavailable,
)
from warden_sdk.models import Decision, Result, Usage
from warden_sdk.proofs import ProofVerification, verify_audit_proof
from warden_sdk.tokens import arguments_digest, fetch_jwks, verify_decision_token

__all__ = [
    "ApprovalTimeout",
    "Decision",
    "InvalidDecisionToken",
    "ProofVerification",
    "Result",
    "RetryPolicy",
    "ToolCallDenied",
    "Usage",
    "WardenClient",
    "WardenError",
    "WardenUnavailable",
    "arguments_digest",
    "current_decision",
    "fetch_jwks",
    "verify_audit_proof",
    "verify_decision_token",
]

__version__ = "0.1.0"
