"""Reads behind the approval pages: the pending queue, the decided list, one approval, the counts.

Each selector owns its joins and prefetches, so a page of the queue costs the same few queries
however many items it shows: the approvals with their agent, owner, tool call and rule in one
query, their votes in one more, and the recent decisions of every agent on the page in one more.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Count, Prefetch, QuerySet

from approvals.choices import SETTLED_STATES, ApprovalKind, ApprovalState
from approvals.models import Approval, Vote
from policy.models import ToolCall

RECENT_CALLS = 5  # an agent's recent decisions shown beside each item

# Heavy columns of the tool call the pages never show.
_UNSHOWN_CALL_FIELDS = ("tool_call__output", "tool_call__usage", "tool_call__drift", "tool_call__shadow")


def _recent_calls() -> Prefetch[Any]:
    """The latest decisions of each agent on the page, one query for all of them.

    One more than shown, so that the item's own call can be left out and five remain.
    """
    calls = ToolCall.objects.only("id", "agent_id", "tool", "decision", "escalated", "created_at").order_by(
        "-created_at"
    )
    return Prefetch("agent__tool_calls", queryset=calls[: RECENT_CALLS + 1], to_attr="recent_calls")


def _votes() -> Prefetch[Any]:
    return Prefetch("votes", queryset=Vote.objects.select_related("approver").order_by("at"))


def _with_details(approvals: QuerySet[Approval]) -> QuerySet[Approval]:
    """Everything one item shows: agent and owner, the call and its arguments, rule, votes, history."""
    approvals = (
        approvals.select_related("agent__owner", "tool_call", "rule")
        .defer(*_UNSHOWN_CALL_FIELDS)
        .prefetch_related(_votes(), _recent_calls())
    )
    if hasattr(ToolCall, "assessments"):  # the guardians' assessments, where that app is installed
        # The model through the relation, so this layer never imports the guardian app.
        assessment = cast(Any, ToolCall._meta.get_field("assessments").related_model)
        prefetch = Prefetch("tool_call__assessments", queryset=assessment.objects.select_related("guardian__agent"))
        approvals = approvals.prefetch_related(prefetch)
    return approvals


def _filtered(approvals: QuerySet[Approval], *, agent: str = "", tool: str = "") -> QuerySet[Approval]:
    if agent:
        approvals = approvals.filter(agent__slug=agent)
    if tool:
        approvals = approvals.filter(tool=tool)
    return approvals


def approval_queue(*, agent: str = "", tool: str = "") -> QuerySet[Approval]:
    """Pending approvals, the soonest due first and the riskiest first among those due together."""
    pending = Approval.objects.filter(state=ApprovalState.PENDING).order_by("due_at", "risk_rank", "created_at")
    return _with_details(_filtered(pending, agent=agent, tool=tool))


def approval_decided_list(*, agent: str = "", tool: str = "") -> QuerySet[Approval]:
    """Settled approvals, the most recently settled first, with their agent for the table."""
    settled = Approval.objects.filter(state__in=SETTLED_STATES).order_by("-settled_at", "-created_at")
    return _filtered(settled, agent=agent, tool=tool).select_related("agent")


def approval_get(approval_id: Any) -> Approval | None:
    """One approval with everything its page shows; None when no approval has this id."""
    return _with_details(Approval.objects.filter(pk=approval_id)).first()


def pending_count() -> int:
    """How many approvals wait for a decision (one COUNT on the queue index)."""
    return Approval.objects.filter(state=ApprovalState.PENDING).count()


def pending_count_by_kind() -> dict[str, int]:
    """How many approvals wait for a decision, per kind, every kind present (one grouped COUNT)."""
    rows = (
        Approval.objects.filter(state=ApprovalState.PENDING)
        .order_by()  # the model's ordering would otherwise join the GROUP BY
        .values_list("kind")
        .annotate(count=Count("id"))
    )
    return dict.fromkeys(ApprovalKind.values, 0) | dict(rows)
