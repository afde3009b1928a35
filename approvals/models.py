"""Approvals: a human decision on one escalated tool call, and the webhooks that tell agents.

Most approvals settle an escalated call. A *review* asks a human about a call that already
ran, when guardians disagree about it or one of them escalates its result: approving clears
the guardians' concern, rejecting confirms it (the guardian app, registered through
`approvals.hooks`, quarantines the agent).

An approval is bound to one tool call, and through it to the call's exact arguments (their
canonical digest): a changed argument is a new tool call with a new approval, and an approval
settles its call once, never another. Votes record who approved or rejected, with a comment;
the identity is the logged-in user, never anything the agent sent.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from approvals.choices import ApprovalKind, ApprovalState, DeliveryState, Verdict
from policy.choices import ExpiryEffect
from policy.models import Rule, ToolCall
from registry.models import Agent


class Approval(models.Model):
    """The human decision an escalated tool call waits for."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=ApprovalKind.choices, default=ApprovalKind.ESCALATION)
    tool_call = models.ForeignKey(ToolCall, on_delete=models.PROTECT, related_name="approvals")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="approvals")
    tool = models.CharField(max_length=128)
    arguments_digest = models.CharField(max_length=64, help_text="The arguments this approval is for, and only those.")
    rule = models.ForeignKey(Rule, on_delete=models.SET_NULL, null=True, blank=True, related_name="approvals")
    rule_name = models.CharField(max_length=120, blank=True, help_text="Kept if the rule is later deleted.")
    reasons = models.JSONField(default=list, blank=True, help_text="Why the call escalated.")
    risk = models.CharField(max_length=16, help_text="The higher of the agent's risk tier and the tool's risk.")
    risk_rank = models.PositiveSmallIntegerField(default=2, help_text="0 critical … 3 low, for sorting.")
    required_approvals = models.PositiveSmallIntegerField(default=1)
    owner_may_not_decide_alone = models.BooleanField(
        default=False, help_text="Separation of duties: a critical-tier agent's owner is not enough on their own."
    )
    on_expiry = models.CharField(max_length=8, choices=ExpiryEffect.choices, default=ExpiryEffect.DENY)
    state = models.CharField(max_length=16, choices=ApprovalState.choices, default=ApprovalState.PENDING)
    created_at = models.DateTimeField(db_index=True)
    due_at = models.DateTimeField()
    settled_at = models.DateTimeField(null=True, blank=True)
    settled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    settled_by_label = models.CharField(max_length=200, blank=True, help_text="Who or what settled it.")
    comment = models.TextField(blank=True, help_text="The deciding approver's comment, or why it was cancelled.")
    notified_at = models.DateTimeField(null=True, blank=True, help_text="Approvers were told it arrived.")
    reminded_at = models.DateTimeField(null=True, blank=True, help_text="Approvers were reminded before it was due.")

    class Meta:
        ordering = ["due_at", "risk_rank"]
        permissions = [("decide_approval", "Can approve or reject escalated tool calls")]
        constraints = [models.UniqueConstraint(fields=["tool_call", "kind"], name="approvals_one_per_call_and_kind")]
        indexes = [
            models.Index(fields=["state", "due_at", "risk_rank"], name="approvals_queue"),
            models.Index(fields=["state", "-settled_at"], name="approvals_settled"),
        ]

    def __str__(self) -> str:
        return f"{self.tool} by {self.agent.slug}: {self.state}"

    @property
    def is_pending(self) -> bool:
        return self.state == ApprovalState.PENDING

    @property
    def is_review(self) -> bool:
        return self.kind == ApprovalKind.REVIEW


class Vote(models.Model):
    """One approver's approve or reject, with a comment; each approver votes once per approval."""

    approval = models.ForeignKey(Approval, on_delete=models.PROTECT, related_name="votes")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_votes")
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    at = models.DateTimeField()

    class Meta:
        ordering = ["at"]
        constraints = [models.UniqueConstraint(fields=["approval", "approver"], name="approvals_one_vote_each")]

    def __str__(self) -> str:
        return f"{self.approver.get_username()}: {self.verdict}"


class Webhook(models.Model):
    """An endpoint an agent registered to hear when its escalated calls are settled.

    The signing secret is not stored: it is derived from the server's SECRET_KEY and this
    webhook's id and nonce, shown to the agent once at registration.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="webhooks")
    url = models.URLField(max_length=500)
    nonce = models.CharField(max_length=64, editable=False)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "url"], condition=Q(active=True), name="approvals_webhook_once")
        ]

    def __str__(self) -> str:
        return self.url


class Delivery(models.Model):
    """One event for one webhook, tried until it is delivered or Warden gives up."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    webhook = models.ForeignKey(Webhook, on_delete=models.PROTECT, related_name="deliveries")
    approval = models.ForeignKey(Approval, on_delete=models.PROTECT, related_name="deliveries")
    event = models.CharField(max_length=64)
    body = models.TextField(help_text="The exact bytes sent (canonical JSON), so every attempt signs the same body.")
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event} to {self.webhook_id}: {self.state}"


class DeliveryAttempt(models.Model):
    """One HTTP POST of a delivery: when, what came back, how long it took."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="approvals_attempt_once")]

    def __str__(self) -> str:
        return f"#{self.number}: {self.status_code or self.error}"
