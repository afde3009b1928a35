"""The SDK's exceptions: one `WardenError` family, so `except WardenError` catches everything Warden-related.

Warden answers errors as `{"code", "message", "detail"}`; `WardenError` carries those fields
unchanged so a caller can branch on the stable `code` rather than parse messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from warden_sdk.models import Decision


class WardenError(Exception):
    """Warden refused the request (a 4xx) or the SDK could not make sense of the answer."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.detail = detail


class WardenUnavailable(WardenError):
    """Warden could not be reached, timed out, or kept answering 5xx after every retry.

    Governed tools fail closed on this error: no decision means the tool does not run.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, code="unavailable", status=status)


class ToolCallDenied(WardenError):
    """Warden (or the human it escalated to) said no; the tool did not run.

    `reason_codes` are Warden's machine-readable reasons (for example `constraint_violation`);
    `decision` is the whole decision, with the human-readable messages.
    """

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.reason_codes = decision.reason_codes
        messages = "; ".join(reason.get("message", reason.get("code", "")) for reason in decision.reasons)
        super().__init__(
            f"Warden denied {decision.tool or 'the tool call'} ({', '.join(self.reason_codes) or 'no reason given'})"
            + (f": {messages}" if messages else ""),
            code="denied",
            detail={"call_id": decision.id, "reasons": list(decision.reasons)},
        )


class ApprovalTimeout(WardenError):
    """No human settled an escalated call in time; the tool did not run and the approval may still be pending."""

    def __init__(self, call_id: str, timeout: float) -> None:
        self.call_id = call_id
        super().__init__(
            f"Tool call {call_id} was still waiting for a human after {timeout:g} s; the tool did not run.",
            code="approval_timeout",
            detail={"call_id": call_id},
        )


class InvalidDecisionToken(WardenError):
    """A decision token failed verification: wrong signature, expired, another tool, or other arguments."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_decision_token")
