"""Warden's policy engine: pure Python, no Django, no I/O. See `decide`."""

from policy.engine.decide import CallContext, Counters, Decision, Request, ShadowResult, decide
from policy.engine.reasons import Code, Outcome, Reason
from policy.engine.snapshot import AgentView, Constraint, ContractView, GrantView, Limits, Snapshot, ToolView

__all__ = [
    "AgentView",
    "CallContext",
    "Code",
    "Constraint",
    "ContractView",
    "Counters",
    "Decision",
    "GrantView",
    "Limits",
    "Outcome",
    "Reason",
    "Request",
    "ShadowResult",
    "Snapshot",
    "ToolView",
    "decide",
]
