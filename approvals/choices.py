"""States of an approval and of a webhook delivery."""

from __future__ import annotations

from django.db import models


class ApprovalKind(models.TextChoices):
    ESCALATION = "escalation", "Escalated call (settles the call)"
    REVIEW = "review", "Review of a call that ran (guardians' concern)"


class ApprovalState(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    EXPIRED = "expired", "Expired"
    CANCELLED = "cancelled", "Cancelled"


SETTLED_STATES = frozenset(
    {ApprovalState.APPROVED, ApprovalState.REJECTED, ApprovalState.EXPIRED, ApprovalState.CANCELLED}
)


class Verdict(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


# Sort order of the queue: the riskiest first among items due at the same time.
RISK_RANK = {"critical": 0, "high": 1, "medium": 2, "low": 3}
