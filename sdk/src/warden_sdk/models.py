"""Plain values the SDK hands back: a `Decision`, and the `Result` a governed function may return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

Outcome = Literal["allow", "deny", "escalate"]


class Usage(TypedDict, total=False):
    """What a tool call consumed, as Warden's result endpoint accepts it (all fields optional)."""

    input_tokens: int
    output_tokens: int
    cost: float


@dataclass(frozen=True)
class Decision:
    """Warden's answer to one tool call.

    `decision` is `allow`, `deny` or `escalate`; an escalated call settles to `allow` or `deny`
    once a human decides. `decision_token` is present on an allow, for the tool server to verify.
    """

    id: str
    decision: Outcome
    reasons: tuple[dict[str, Any], ...] = ()
    tool: str | None = None
    shadow: Any = None
    contract_version: int | None = None
    policy_version: int | None = None
    decision_token: str | None = None
    expires_at: str | None = None
    approval: dict[str, Any] | None = None
    document: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_document(cls, document: dict[str, Any], *, tool: str | None = None) -> Decision:
        """Build from POST /tool-calls (decision document) or GET /tool-calls/<id> (the call record)."""
        return cls(
            id=str(document["id"]),
            decision=document["decision"],
            reasons=tuple(document.get("reasons") or ()),
            tool=document.get("tool", tool),
            shadow=document.get("shadow"),
            contract_version=document.get("contract_version"),
            policy_version=document.get("policy_version"),
            decision_token=document.get("decision_token"),
            # The decision document says `expires_at`, the call record `token_expires_at`.
            expires_at=document.get("expires_at", document.get("token_expires_at")),
            approval=document.get("approval"),
            document=document,
        )

    @property
    def allowed(self) -> bool:
        return self.decision == "allow"

    @property
    def denied(self) -> bool:
        return self.decision == "deny"

    @property
    def escalated(self) -> bool:
        """Still waiting for a human (a settled escalation reads as allowed or denied)."""
        return self.decision == "escalate"

    @property
    def reason_codes(self) -> tuple[str, ...]:
        return tuple(str(reason.get("code", "")) for reason in self.reasons)


@dataclass(frozen=True)
class Result:
    """What a governed function may return to report usage with its output.

    The caller of the governed function receives `output`; Warden receives both.
    """

    output: Any
    usage: Usage | None = None
