"""Where higher layers plug into the decision path without policy importing them.

The approval queue (approvals/) sits above policy: it registers here in its `AppConfig.ready()`
to open an approval for every escalated call, inside the transaction that records the call,
and to describe a call's approval in the tool-call API. Guardians (guardian/) register a
pre-decision check for tools marked for pre-checks, and a handler that queues scoring once an
agent reports a call's result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policy.engine import Decision, Snapshot
    from policy.engine.reasons import Reason
    from policy.models import ToolCall


@dataclass(frozen=True)
class PreCheck:
    """A call the engine did not deny, for a tool marked for pre-checks, before it is recorded."""

    call_id: str
    agent_id: str
    tool: str
    arguments: Mapping[str, Any]  # as the agent sent them (sensitive values not yet masked)
    context: Mapping[str, Any]
    decision: Decision
    snapshot: Snapshot
    now: dt.datetime


@dataclass(frozen=True)
class PreCheckOutcome:
    """What a pre-check adds: reasons (which may escalate or deny the call), and what to record.

    `record(call)` runs inside the transaction that inserts the call, so what the check stores
    (its scores, a quarantine) commits with the decision or not at all.
    """

    reasons: Sequence[Reason] = ()
    record: Callable[[ToolCall], None] | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


EscalationHandler = Callable[["ToolCall", "Decision"], None]
DetailProvider = Callable[["ToolCall"], dict[str, Any]]
PreDecisionCheck = Callable[[PreCheck], "PreCheckOutcome | None"]
ResultHandler = Callable[["ToolCall"], None]

_escalation_handlers: list[EscalationHandler] = []
_detail_providers: list[DetailProvider] = []
_pre_decision_checks: list[PreDecisionCheck] = []
_result_handlers: list[ResultHandler] = []


def pre_decision(check: PreDecisionCheck) -> PreDecisionCheck:
    """Register `check(pre) -> PreCheckOutcome | None`, run on the decision path for tools marked for pre-checks.

    It runs only when the engine did not deny; it must keep to its own time budget and fail
    closed (escalate) when it cannot decide in time.
    """
    if check not in _pre_decision_checks:
        _pre_decision_checks.append(check)
    return check


def on_result(handler: ResultHandler) -> ResultHandler:
    """Register `handler(call)`, run inside the transaction that records a reported result."""
    if handler not in _result_handlers:
        _result_handlers.append(handler)
    return handler


def has_pre_decision_checks() -> bool:
    return bool(_pre_decision_checks)


def pre_checks(pre: PreCheck) -> list[PreCheckOutcome]:
    outcomes = []
    for check in _pre_decision_checks:
        outcome = check(pre)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def result_reported(call: ToolCall) -> None:
    for handler in _result_handlers:
        handler(call)


def on_escalation(handler: EscalationHandler) -> EscalationHandler:
    """Register `handler(call, decision)`, run inside the transaction that records an escalated call."""
    if handler not in _escalation_handlers:
        _escalation_handlers.append(handler)
    return handler


def call_details(provider: DetailProvider) -> DetailProvider:
    """Register `provider(call) -> {key: value}`, merged into the tool-call API's document of one call."""
    if provider not in _detail_providers:
        _detail_providers.append(provider)
    return provider


def escalated(call: ToolCall, decision: Decision) -> None:
    for handler in _escalation_handlers:
        handler(call, decision)


def details(call: ToolCall) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for provider in _detail_providers:
        extra.update(provider(call))
    return extra
