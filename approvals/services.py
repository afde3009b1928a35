"""Every write of the approval queue: open, vote, cancel, expire. Each step is one audit record.

An approval opens inside the transaction that records its escalated tool call (see
`policy.hooks`). Votes and settlements lock the approval row (`SELECT … FOR UPDATE` on
PostgreSQL) and change its state with a compare-and-set on `pending`, so of two approvers
clicking at once exactly one settles it and the other is told who did. A settled approval
settles its tool call once (`policy.decisions.settle_escalation`): allow with a decision
token, or deny with a reason code. Agents hear of it by long poll or webhook, after commit.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

import audit.services as audit
from approvals import hooks, metrics
from approvals.choices import RISK_RANK, ApprovalKind, ApprovalState, Verdict
from approvals.models import Approval, Vote
from core import tracing
from core.actors import Actor
from core.conf import warden_settings
from core.errors import Conflict, InvalidInput, NotFound, WardenError
from policy import decisions
from policy.choices import ExpiryEffect
from policy.engine import Code, Decision, Outcome, Reason
from policy.models import Rule, ToolCall
from registry.choices import AgentStatus, RiskTier
from registry.models import Agent, Tool

logger = logging.getLogger(__name__)

DECIDE_PERMISSION = "approvals.decide_approval"
MAX_COMMENT = 2000


class PermissionDenied(WardenError):
    code = "permission_denied"
    status = 403


class AlreadySettled(Conflict):
    """Someone (or the clock) settled the approval first."""

    code = "already_settled"


# Opening -------------------------------------------------------------------------------------


def open_approval(call: ToolCall, decision: Decision) -> None:
    """Open the approval for an escalated call; runs inside the transaction that records the call."""
    agent = Agent.objects.only("id", "slug", "owner_id", "risk_tier").get(pk=call.agent_id)
    tool_risk = Tool.objects.filter(name=call.tool).values_list("default_risk", flat=True).first()
    risk = min((agent.risk_tier, tool_risk or RiskTier.LOW), key=lambda tier: RISK_RANK.get(tier, 3))
    rule = _escalating_rule(call)
    timeout = (rule.approval_timeout_seconds if rule else None) or warden_settings.APPROVAL_TIMEOUT_SECONDS
    required = rule.required_approvals if rule else 1
    if risk == RiskTier.CRITICAL:
        required = max(required, warden_settings.APPROVAL_CRITICAL_QUORUM)
    approval = Approval.objects.create(
        tool_call=call,
        agent_id=call.agent_id,
        tool=call.tool,
        arguments_digest=call.arguments_digest,
        rule=rule,
        rule_name=rule.name if rule else "",
        reasons=[reason for reason in call.reasons if reason.get("code") == Code.RULE_ESCALATED] or call.reasons,
        risk=risk,
        risk_rank=RISK_RANK.get(risk, 3),
        required_approvals=required,
        owner_may_not_decide_alone=agent.risk_tier == RiskTier.CRITICAL,
        on_expiry=rule.on_expiry if rule else ExpiryEffect.DENY,
        created_at=call.created_at,
        due_at=call.created_at + dt.timedelta(seconds=timeout),
    )
    _record(
        Actor(kind="agent", id=str(agent.pk), label=agent.slug),
        "approval.requested",
        approval,
        at=call.created_at,
        extra={
            "arguments_sha256": call.arguments_digest,
            "rule": str(rule.pk) if rule else None,
            "reasons": approval.reasons,
            "risk": risk,
            "required_approvals": required,
            "owner_may_not_decide_alone": approval.owner_may_not_decide_alone,
            "on_expiry": approval.on_expiry,
        },
    )
    call._approval = approval  # type: ignore[attr-defined]  # the response describes it without a query
    approval_id = str(approval.pk)
    tracing.annotate({tracing.APPROVAL_ID: approval_id})  # on the decision's span, which this hook runs in
    transaction.on_commit(lambda: _send_later("notify_arrival", approval_id))


def open_review(
    call: ToolCall, *, actor: Actor, reasons: list[dict[str, Any]], timeout_seconds: int | None = None
) -> Approval:
    """Ask a human about a call that already ran (guardians disagree, or one escalates its result).

    At most one review per call: a second request returns the first. Approving clears the
    concern; rejecting confirms it; expiring or being cancelled leaves the flags as they are.
    Call it inside the transaction that records why.
    """
    existing = Approval.objects.filter(tool_call_id=call.pk, kind=ApprovalKind.REVIEW).first()
    if existing is not None:
        return existing
    agent = Agent.objects.only("id", "slug", "risk_tier").get(pk=call.agent_id)
    now = timezone.now()
    timeout = timeout_seconds or warden_settings.APPROVAL_TIMEOUT_SECONDS
    with transaction.atomic():
        approval = Approval.objects.create(
            kind=ApprovalKind.REVIEW,
            tool_call=call,
            agent_id=call.agent_id,
            tool=call.tool,
            arguments_digest=call.arguments_digest,
            reasons=reasons,
            risk=agent.risk_tier,
            risk_rank=RISK_RANK.get(agent.risk_tier, 3),
            required_approvals=1,
            on_expiry=ExpiryEffect.DENY,
            created_at=now,
            due_at=now + dt.timedelta(seconds=timeout),
        )
        _record(actor, "approval.review_requested", approval, at=now, extra={"kind": approval.kind, "reasons": reasons})
    approval_id = str(approval.pk)
    transaction.on_commit(lambda: _send_later("notify_arrival", approval_id))
    return approval


def _escalating_rule(call: ToolCall) -> Rule | None:
    rule_ids = [
        reason["rule"] for reason in call.reasons if reason.get("code") == Code.RULE_ESCALATED and "rule" in reason
    ]
    if not rule_ids:
        return None
    return Rule.objects.filter(pk=rule_ids[0]).first()


def _send_later(task_name: str, *args: Any) -> None:
    """Queue a task; if the broker is down the periodic task catches up (notified_at stays empty)."""
    from approvals import tasks

    try:
        getattr(tasks, task_name).delay(*args)
    except Exception:
        logger.warning("Could not queue %s; the periodic approvals task will catch up.", task_name, exc_info=True)


# Reading -------------------------------------------------------------------------------------


def approval_detail(call: ToolCall) -> dict[str, Any]:
    """The `approval` member of a tool call's API document (empty for calls never escalated)."""
    if not call.escalated:
        return {}
    approval = getattr(call, "_approval", None)
    if approval is None:
        approval = Approval.objects.filter(tool_call_id=call.pk, kind=ApprovalKind.ESCALATION).first()
    if approval is None:
        return {"approval": None}
    return {"approval": summary(approval)}


def summary(approval: Approval, votes: list[Vote] | None = None) -> dict[str, Any]:
    """What an agent or a webhook is told about an approval: state, timing, and who decided."""
    if votes is None:
        votes = list(approval.votes.select_related("approver")) if not approval._state.adding else []
    return {
        "id": str(approval.pk),
        "state": approval.state,
        "due_at": _iso(approval.due_at),
        "required_approvals": approval.required_approvals,
        "approvals": sum(1 for vote in votes if vote.verdict == Verdict.APPROVE),
        "on_expiry": approval.on_expiry,
        "settled_at": _iso(approval.settled_at),
        "settled_by": approval.settled_by_label or None,
        "comment": approval.comment or None,
    }


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def can_decide(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.has_perm(DECIDE_PERMISSION))


def approvers() -> QuerySet[Any]:
    """Active users who may decide approvals: by group, by direct permission, or superusers."""
    user_model = get_user_model()
    codename = DECIDE_PERMISSION.split(".", 1)[1]
    return (
        user_model.objects.filter(is_active=True)
        .filter(
            Q(is_superuser=True)
            | Q(groups__permissions__codename=codename, groups__permissions__content_type__app_label="approvals")
            | Q(user_permissions__codename=codename, user_permissions__content_type__app_label="approvals")
        )
        .distinct()
        .order_by("username")
    )


# Voting --------------------------------------------------------------------------------------


def vote(*, approval_id: Any, user: Any, verdict: str, comment: str = "") -> Approval:
    """One approver approves or rejects. Returns the approval, settled when this vote settles it.

    Refused with 403 without the permission, 400 for a reject without a comment, 409
    (`already_settled`, naming who settled it) when it is no longer pending, 409 for a
    second vote by the same approver.
    """
    if not can_decide(user):
        raise PermissionDenied("Only members of approvers (with the permission to decide approvals) may decide.")
    if verdict not in Verdict.values:
        raise InvalidInput(
            f"Unknown verdict {verdict!r}.", detail={"verdict": [f"One of: {', '.join(Verdict.values)}."]}
        )
    comment = (comment or "").strip()
    if verdict == Verdict.REJECT and not comment:
        raise InvalidInput("Say why: a rejection needs a comment.", detail={"comment": ["Required to reject."]})
    if len(comment) > MAX_COMMENT:
        raise InvalidInput("The comment is too long.", detail={"comment": [f"At most {MAX_COMMENT} characters."]})
    actor = Actor.from_user(user)
    now = timezone.now()
    with transaction.atomic():
        approval = _locked(approval_id)
        _check_pending(approval, now)
        agent = Agent.objects.only("id", "slug", "status", "owner_id").get(pk=approval.agent_id)
        if verdict == Verdict.APPROVE and agent.status != AgentStatus.ACTIVE and not approval.is_review:
            raise Conflict(
                f"The agent is {agent.status}: its call cannot be approved (only active agents act).",
                detail={"agent_status": agent.status},
            )
        try:
            with transaction.atomic():
                cast = Vote.objects.create(approval=approval, approver=user, verdict=verdict, comment=comment, at=now)
        except IntegrityError:
            raise Conflict("You already voted on this approval.", detail={"approval": str(approval.pk)}) from None
        votes = list(approval.votes.all())
        approving = [v for v in votes if v.verdict == Verdict.APPROVE]
        owner_only = approval.owner_may_not_decide_alone and all(v.approver_id == agent.owner_id for v in approving)
        _record(
            actor,
            "approval.voted",
            approval,
            at=now,
            extra={"verdict": verdict, "comment": comment, "approvals": len(approving), "vote": cast.pk},
        )
        if verdict == Verdict.REJECT:
            _settle(approval, ApprovalState.REJECTED, actor=actor, user=user, comment=comment, now=now)
        elif len(approving) >= approval.required_approvals and not owner_only:
            _settle(approval, ApprovalState.APPROVED, actor=actor, user=user, comment=comment, now=now)
    approval.votes_cast = votes  # type: ignore[attr-defined]
    return approval


def still_needed(approval: Approval, votes: list[Vote], owner_id: Any) -> str:
    """Why a pending approval is not settled yet, for the page: how many more, or who else."""
    approving = [vote for vote in votes if vote.verdict == Verdict.APPROVE]
    missing = approval.required_approvals - len(approving)
    if missing > 0:
        return f"{missing} more approval{'s' if missing != 1 else ''} needed"
    if approval.owner_may_not_decide_alone and all(vote.approver_id == owner_id for vote in approving):
        return "an approver other than the agent's owner must approve (separation of duties)"
    return ""


def _locked(approval_id: Any) -> Approval:
    try:
        return Approval.objects.select_for_update().get(pk=approval_id)
    except (Approval.DoesNotExist, ValueError, TypeError):
        raise NotFound("No approval has this id.") from None


def _check_pending(approval: Approval, now: dt.datetime) -> None:
    if approval.state != ApprovalState.PENDING:
        raise AlreadySettled(
            f"Already {approval.state}"
            + (f" by {approval.settled_by_label}" if approval.settled_by_label else "")
            + (f" at {approval.settled_at:%Y-%m-%d %H:%M:%S} UTC." if approval.settled_at else "."),
            detail={
                "state": approval.state,
                "settled_by": approval.settled_by_label or None,
                "settled_at": _iso(approval.settled_at),
                "comment": approval.comment or None,
            },
        )
    if approval.due_at <= now:
        raise AlreadySettled(
            "This approval is past its due time; it is expiring.",
            detail={"state": "expiring", "due_at": _iso(approval.due_at)},
        )


def _settle(
    approval: Approval,
    state: str,
    *,
    actor: Actor,
    now: dt.datetime,
    user: Any = None,
    comment: str = "",
) -> None:
    """Move a locked, pending approval to its final state and settle its tool call, exactly once.

    How long it waited is observed once the settlement commits (`approvals.metrics`).
    """
    changed = Approval.objects.filter(pk=approval.pk, state=ApprovalState.PENDING).update(
        state=state, settled_at=now, settled_by=user, settled_by_label=actor.label, comment=comment
    )
    if changed != 1:  # without row locks (SQLite) a concurrent settlement is caught here
        approval.refresh_from_db()
        _check_pending(approval, now)
        raise AlreadySettled("Settled concurrently.")
    approval.state, approval.settled_at, approval.settled_by = state, now, user
    approval.settled_by_label, approval.comment = actor.label, comment
    # Clocks of different machines may disagree by a little: a wait is never negative.
    waited, kind = max(0.0, (now - approval.created_at).total_seconds()), approval.kind
    transaction.on_commit(lambda: metrics.record_settled(kind=kind, outcome=state, seconds=waited))
    if approval.is_review:
        _settle_review(approval, state, actor=actor, now=now, comment=comment)
        return
    outcome, reason = _outcome(approval, state, actor, comment)
    call = decisions.settle_escalation(approval.tool_call_id, outcome=outcome, reason=reason, now=now)
    action = {
        ApprovalState.APPROVED: "approval.decided",
        ApprovalState.REJECTED: "approval.decided",
        ApprovalState.EXPIRED: "approval.expired",
        ApprovalState.CANCELLED: "approval.cancelled",
    }[ApprovalState(state)]
    _record(
        actor,
        action,
        approval,
        at=now,
        extra={
            "state": state,
            "tool_call_decision": call.decision,
            "token_expires_at": _iso(call.token_expires_at),
            "comment": comment,
            "reason": reason.as_dict() if reason else None,
        },
    )
    approval_id = str(approval.pk)
    transaction.on_commit(lambda: _announce(approval_id))


def _settle_review(approval: Approval, state: str, *, actor: Actor, now: dt.datetime, comment: str) -> None:
    """A review settles no call (it already ran): record it, and let the layer that asked act on it."""
    action = {
        ApprovalState.APPROVED: "approval.reviewed",
        ApprovalState.REJECTED: "approval.reviewed",
        ApprovalState.EXPIRED: "approval.expired",
        ApprovalState.CANCELLED: "approval.cancelled",
    }[ApprovalState(state)]
    _record(actor, action, approval, at=now, extra={"kind": approval.kind, "state": state, "comment": comment})
    hooks.review_settled(approval, actor)


def _outcome(approval: Approval, state: str, actor: Actor, comment: str) -> tuple[str, Reason | None]:
    if state == ApprovalState.APPROVED:
        return Outcome.ALLOW, None
    if state == ApprovalState.REJECTED:
        return Outcome.DENY, Reason(
            Code.APPROVAL_REJECTED, f"Rejected by {actor.label}: {comment}", detail={"approval": str(approval.pk)}
        )
    if state == ApprovalState.CANCELLED:
        return Outcome.DENY, Reason(
            Code.APPROVAL_CANCELLED, f"Cancelled by {actor.label}: {comment}", detail={"approval": str(approval.pk)}
        )
    allow = approval.on_expiry == ExpiryEffect.ALLOW
    return (Outcome.ALLOW if allow else Outcome.DENY), Reason(
        Code.APPROVAL_EXPIRED,
        "Nobody decided before it was due; the rule says " + ("allow." if allow else "deny."),
        detail={"approval": str(approval.pk), "on_expiry": approval.on_expiry},
    )


def _announce(approval_id: str) -> None:
    """After commit: queue the webhooks of the agent (each delivery retried on its own)."""
    from approvals import webhooks

    for delivery_id in webhooks.enqueue_settled(approval_id):
        _send_later("deliver", delivery_id)


# Cancelling and expiring -------------------------------------------------------------------------


def cancel(*, approval_id: Any, actor: Actor, reason: str, agent_id: str | None = None, user: Any = None) -> Approval:
    """Withdraw a pending approval: the agent itself (agent_id set), or a user allowed to decide."""
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the call is withdrawn.", detail={"reason": ["Required."]})
    if user is not None and not can_decide(user):
        raise PermissionDenied("Only members of approvers may cancel another agent's escalated call.")
    now = timezone.now()
    with transaction.atomic():
        approval = _locked(approval_id)
        if agent_id is not None and (str(approval.agent_id) != str(agent_id) or approval.is_review):
            raise NotFound("No approval has this id.")  # an agent never withdraws a review of itself
        if approval.state != ApprovalState.PENDING:
            _check_pending(approval, now)
        _settle(approval, ApprovalState.CANCELLED, actor=actor, user=user, comment=reason[:MAX_COMMENT], now=now)
    return approval


def cancel_pending_of_agent(*, agent_id: Any, actor: Actor, reason: str) -> int:
    """Cancel every pending approval of an agent (it was suspended, quarantined or retired)."""
    cancelled = 0
    for approval_id in Approval.objects.filter(agent_id=agent_id, state=ApprovalState.PENDING).values_list(
        "pk", flat=True
    ):
        try:
            cancel(approval_id=approval_id, actor=actor, reason=reason)
            cancelled += 1
        except AlreadySettled:
            continue
    return cancelled


def agent_saved(sender: Any, instance: Agent, created: bool = False, **kwargs: Any) -> None:
    """post_save of an agent: once it is no longer active, its pending approvals are cancelled.

    Runs inside the transaction of the status change, so the cancellations commit with it.
    """
    if created or instance.status == AgentStatus.ACTIVE:
        return
    if not Approval.objects.filter(agent_id=instance.pk, state=ApprovalState.PENDING).exists():
        return
    cancel_pending_of_agent(
        agent_id=instance.pk,
        actor=Actor(kind="system", id="approvals.agent_status", label=f"agent became {instance.status}"),
        reason=f"The agent became {instance.status}; only active agents act.",
    )


def expire_due(now: dt.datetime | None = None) -> int:
    """Expire every pending approval past its due time; the rule's expiry effect settles the call."""
    now = now or timezone.now()
    actor = Actor(kind="system", id="approvals.expire", label="approvals.expire (due time passed)")
    expired = 0
    due = Approval.objects.filter(state=ApprovalState.PENDING, due_at__lte=now).order_by("due_at")
    for approval_id in due.values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            approval = _locked(approval_id)
            if approval.state != ApprovalState.PENDING:
                continue
            _settle(approval, ApprovalState.EXPIRED, actor=actor, comment="", now=now)
            expired += 1
    return expired


def mark_notified(approval_id: Any, field: str, now: dt.datetime, recipients: list[str]) -> bool:
    """Claim the right to send one notice (arrival or reminder) exactly once; record it."""
    with transaction.atomic():
        claimed = Approval.objects.filter(pk=approval_id, state=ApprovalState.PENDING, **{f"{field}__isnull": True})
        if claimed.update(**{field: now}) != 1:
            return False
        approval = Approval.objects.get(pk=approval_id)
        _record(
            Actor(kind="system", id="approvals.notify", label="approvals.notify"),
            "approval.reminder_sent" if field == "reminded_at" else "approval.notified",
            approval,
            at=now,
            extra={"recipients": recipients},
        )
    return True


def _record(actor: Actor, action: str, approval: Approval, *, at: dt.datetime, extra: dict[str, Any]) -> None:
    audit.append(
        actor=actor,
        action=action,
        subject_type="approval",
        subject_id=str(approval.pk),
        agent_id=str(approval.agent_id),
        tool=approval.tool,
        at=at,
        payload={
            "approval": str(approval.pk),
            "tool_call": str(approval.tool_call_id),
            "due_at": _iso(approval.due_at),
            **extra,
        },
    )
