"""The stable reason codes of every decision, and the Reason value that carries one.

Codes are part of Warden's API: agents, dashboards and auditors match on them, so a code is
never renamed or reused. Messages are for people and may improve over time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """What the engine answers; ordered from least to most restrictive."""

    ALLOW = "allow"
    ESCALATE = "escalate"
    DENY = "deny"


SEVERITY = {Outcome.ALLOW: 0, Outcome.ESCALATE: 1, Outcome.DENY: 2}


class Code(StrEnum):
    """Why a call was denied or escalated (or, for shadow rules, would have been)."""

    EMPTY_SNAPSHOT = "empty_snapshot"
    UNKNOWN_AGENT = "unknown_agent"
    AGENT_NOT_ACTIVE = "agent_not_active"
    DELEGATION_DENIED = "delegation_denied"
    UNKNOWN_TOOL = "unknown_tool"
    NO_GRANT = "no_grant"
    NO_ACTIVE_CONTRACT = "no_active_contract"
    UNKNOWN_CONTRACT_VERSION = "unknown_contract_version"
    SCHEMA_VIOLATION = "schema_violation"
    LIMIT_EXCEEDED = "limit_exceeded"
    RULE_DENIED = "rule_denied"
    RULE_ESCALATED = "rule_escalated"
    RULE_ERROR = "rule_error"
    RATE_LIMITED = "rate_limited"
    BUDGET_EXCEEDED = "budget_exceeded"
    LOOP_DETECTED = "loop_detected"
    INTERNAL_ERROR = "internal_error"
    # Given by the approval queue, never by the engine: how a human (or the clock) settled an escalation.
    APPROVAL_REJECTED = "approval_rejected"
    APPROVAL_EXPIRED = "approval_expired"
    APPROVAL_CANCELLED = "approval_cancelled"
    # Containment of a quarantined agent: what it delegated, and what the agents it supervises do.
    QUARANTINE_CONTAINMENT = "quarantine_containment"
    # Given by a guardian's pre-check on the decision path (tools marked for pre-checks), never by the engine.
    GUARDIAN_ESCALATED = "guardian_escalated"
    GUARDIAN_DENIED = "guardian_denied"
    GUARDIAN_TIMEOUT = "guardian_timeout"
    GUARDIAN_DISAGREEMENT = "guardian_disagreement"


# The outcome each code forces: deny, except the escalations a human settles.
CODE_OUTCOME = dict.fromkeys(Code, Outcome.DENY) | {
    Code.RULE_ESCALATED: Outcome.ESCALATE,
    Code.QUARANTINE_CONTAINMENT: Outcome.ESCALATE,
    Code.GUARDIAN_ESCALATED: Outcome.ESCALATE,
    Code.GUARDIAN_TIMEOUT: Outcome.ESCALATE,
    Code.GUARDIAN_DISAGREEMENT: Outcome.ESCALATE,
}

# One line per code, for the API documentation and the admin.
CODE_DESCRIPTIONS = {
    Code.EMPTY_SNAPSHOT: "No policy is loaded; nothing is allowed.",
    Code.UNKNOWN_AGENT: "The calling agent is not in the registry.",
    Code.AGENT_NOT_ACTIVE: "The agent is draft, suspended, quarantined or retired; only active agents act.",
    Code.DELEGATION_DENIED: "The on_behalf_of chain is invalid, too deep, cyclic, or a member lacks the authority.",
    Code.UNKNOWN_TOOL: "No registered tool has this name.",
    Code.NO_GRANT: "Neither the agent nor its role holds a current grant for the tool.",
    Code.NO_ACTIVE_CONTRACT: "The tool has no active contract version to validate arguments against.",
    Code.UNKNOWN_CONTRACT_VERSION: "The requested contract version does not exist or is a draft.",
    Code.SCHEMA_VIOLATION: "The arguments do not match the contract's input schema (see each pointer).",
    Code.LIMIT_EXCEEDED: "An argument is outside the limits of a grant.",
    Code.RULE_DENIED: "A rule denies the call.",
    Code.RULE_ESCALATED: "A rule requires a human to approve the call.",
    Code.RULE_ERROR: "A rule could not be evaluated on these arguments; failing closed.",
    Code.RATE_LIMITED: "Too many calls: a grant's per-minute or the agent's per-hour limit.",
    Code.BUDGET_EXCEEDED: "The agent's reported cost today reached its daily budget.",
    Code.LOOP_DETECTED: "The same tool with the same arguments was called too often in a short window.",
    Code.INTERNAL_ERROR: "Warden could not decide; failing closed.",
    Code.APPROVAL_REJECTED: "An approver rejected the escalated call.",
    Code.APPROVAL_EXPIRED: "Nobody decided the escalated call before it was due; the rule's expiry effect applied.",
    Code.APPROVAL_CANCELLED: "The escalated call was withdrawn (by the agent, an administrator, or a status change).",
    Code.QUARANTINE_CONTAINMENT: "An agent on whose behalf the call is made, or that supervises the caller, is "
    "quarantined; a human must approve.",
    Code.GUARDIAN_ESCALATED: "A guardian's pre-check scored the call above its escalation threshold.",
    Code.GUARDIAN_DENIED: "A guardian's pre-check scored the call above its quarantine threshold; the agent is "
    "quarantined.",
    Code.GUARDIAN_TIMEOUT: "A guardian's pre-check did not finish within its time budget; a human must approve.",
    Code.GUARDIAN_DISAGREEMENT: "Two guardians disagree about the call beyond the margin; a human must approve.",
}


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason for a decision: a stable code, a message, and where it applies."""

    code: Code
    message: str
    pointer: str | None = None  # JSON Pointer into the arguments, for schema and limit reasons
    rule: str | None = None  # the rule's id, for rule reasons
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> Outcome:
        return CODE_OUTCOME[self.code]

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": str(self.code), "message": self.message}
        if self.pointer is not None:
            data["pointer"] = self.pointer
        if self.rule is not None:
            data["rule"] = self.rule
        if self.detail:
            data["detail"] = self.detail
        return data
