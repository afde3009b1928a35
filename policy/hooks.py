"""Where higher layers plug into the decision path without policy importing them.

The approval queue (approvals/) sits above policy: it registers here in its `AppConfig.ready()`
to open an approval for every escalated call, inside the transaction that records the call,
and to describe a call's approval in the tool-call API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policy.engine import Decision
    from policy.models import ToolCall

EscalationHandler = Callable[["ToolCall", "Decision"], None]
DetailProvider = Callable[["ToolCall"], dict[str, Any]]

_escalation_handlers: list[EscalationHandler] = []
_detail_providers: list[DetailProvider] = []


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
