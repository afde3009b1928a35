"""Prometheus metrics of the decision path: how tool calls were decided, how long it took, and why.

Labels stay bounded whatever agents send: `decision` is one of three outcomes, `code` one of
the engine's reason codes, and `tool` a tool of the policy snapshot or "unregistered", so an
agent that invents tool names cannot invent series. Agents are never a label; per-agent
questions are for the audit trail and the tool-call API.

These run on the hot path once per decision, for a few microseconds (see `record_decision`).
Under gunicorn the values live in prometheus-client's multiprocess files, and `/metrics`
(telemetry) adds them up over the workers.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from policy.engine import Snapshot

UNREGISTERED = "unregistered"

# A decision takes about 1-50 ms (the upper end: a guardian's pre-check within its budget);
# finer buckets there, a few coarse ones to show a database that stalls.
DECISION_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5)

TOOL_CALLS = Counter(
    "warden_tool_calls_total",
    "Tool calls decided, by decision (allow, deny, escalate) and tool; tools not in the policy count as "
    "unregistered. An escalated call counts once, as escalate; how it settles is warden_approval_wait_seconds.",
    ["decision", "tool"],
)
DECISION_DURATION = Histogram(
    "warden_decision_duration_seconds",
    "Time from receiving a tool call to its stored decision.",
    buckets=DECISION_BUCKETS,
)
REASONS = Counter(
    "warden_reasons_total",
    "Decisions citing each reason code (a code cited several times in one decision counts once).",
    ["code"],
)
CONTRACT_DRIFT = Counter(
    "warden_contract_drift_total",
    "Reported results whose output broke the tool contract's output schema, by tool.",
    ["tool"],
)


def tool_label(tool: str, snapshot: Snapshot) -> str:
    """The tool's name if the policy knows it, else "unregistered" (agents choose the names they send)."""
    return tool if tool in snapshot.tools else UNREGISTERED


def record_decision(*, decision: str, tool: str, codes: Iterable[str], seconds: float) -> None:
    """Count one stored decision; `tool` is already a label (`tool_label`).

    Measured on 2 cores: about 3 µs per decision in one process (4 µs with reason codes) and
    4.5 µs in multiprocess mode (6.5 µs), where every increment writes a memory-mapped file
    under a lock; next to a decision's milliseconds, well under one percent.
    """
    TOOL_CALLS.labels(decision, tool).inc()
    DECISION_DURATION.observe(seconds)
    for code in set(codes):
        REASONS.labels(code).inc()


def record_drift(tool: str) -> None:
    """Count one result that drifted from its contract; `tool` is already a label (`tool_label`)."""
    CONTRACT_DRIFT.labels(tool).inc()
