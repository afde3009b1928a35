"""E-mail to approvers: when an item arrives and before it is due (Django's mail backend).

Each notice is sent once: the approval row is claimed (`notified_at` / `reminded_at` set by a
compare-and-set) and the notice recorded in the audit trail before the mail goes out.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.core.mail import send_mail
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from approvals import services
from approvals.choices import ApprovalState
from approvals.models import Approval
from core.conf import warden_settings

logger = logging.getLogger(__name__)

CATCH_UP_AFTER = dt.timedelta(seconds=30)


def _link(approval: Approval) -> str:
    return warden_settings.PUBLIC_URL.rstrip("/") + reverse("approvals:detail", args=[approval.pk])


def _recipients() -> list[str]:
    return list(services.approvers().exclude(email="").values_list("email", flat=True))


def _send(approval_id: Any, field: str, subject: str, lines: list[str]) -> bool:
    recipients = _recipients()
    now = timezone.now()
    if not services.mark_notified(approval_id, field, now, recipients):
        return False
    if recipients:
        send_mail(subject, "\n".join(lines), None, recipients, fail_silently=False)
    else:
        logger.warning("No approver has an e-mail address; approval %s waits unannounced.", approval_id)
    return True


def send_arrival(approval_id: Any) -> bool:
    approval = Approval.objects.select_related("agent").filter(pk=approval_id).first()
    if approval is None or approval.state != ApprovalState.PENDING:
        return False
    return _send(
        approval.pk,
        "notified_at",
        f"[Warden] Approval needed: {approval.tool} by {approval.agent.slug} ({approval.risk} risk)",
        [
            f"{approval.agent.slug} asks to run {approval.tool}; a rule escalated it to a human.",
            f"Why: {_why(approval)}",
            f"Approvals needed: {approval.required_approvals}",
            f"Due: {approval.due_at:%Y-%m-%d %H:%M} UTC (then: {approval.on_expiry})",
            "",
            f"Decide: {_link(approval)}",
        ],
    )


def send_reminders(now: dt.datetime | None = None) -> int:
    """Remind approvers of pending items due within WARDEN_APPROVAL_REMINDER_SECONDS."""
    now = now or timezone.now()
    soon = now + dt.timedelta(seconds=warden_settings.APPROVAL_REMINDER_SECONDS)
    due = Approval.objects.select_related("agent").filter(
        state=ApprovalState.PENDING, reminded_at__isnull=True, due_at__gt=now, due_at__lte=soon
    )
    sent = 0
    for approval in due[:200]:
        minutes = max(1, int((approval.due_at - now).total_seconds() // 60))
        sent += _send(
            approval.pk,
            "reminded_at",
            f"[Warden] Due in {minutes} min: {approval.tool} by {approval.agent.slug}",
            [
                f"{approval.agent.slug}'s call to {approval.tool} is still waiting for a decision.",
                f"Why: {_why(approval)}",
                f"Due: {approval.due_at:%Y-%m-%d %H:%M} UTC; then the rule says {approval.on_expiry}.",
                "",
                f"Decide: {_link(approval)}",
            ],
        )
    return sent


def send_missed_arrivals(now: dt.datetime | None = None) -> int:
    """Arrival notices whose task never ran (the broker was down when the call escalated)."""
    now = now or timezone.now()
    missed = Approval.objects.filter(
        state=ApprovalState.PENDING, notified_at__isnull=True, created_at__lte=now - CATCH_UP_AFTER
    ).filter(due_at__gt=F("created_at"))
    return sum(send_arrival(pk) for pk in missed.values_list("pk", flat=True)[:200])


def _why(approval: Approval) -> str:
    messages = [str(reason.get("message", reason.get("code", ""))) for reason in approval.reasons]
    return "; ".join(messages) or "escalated"
