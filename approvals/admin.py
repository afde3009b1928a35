"""Approvals in the admin: approvals with their votes, webhooks, deliveries with their attempts.

Read-only for everyone: approvals are opened by the policy, settled by votes, expiry or
cancellation, and webhooks and deliveries are written by the API and the delivery task, each
step with its audit record. Deciding happens on the queue page (/approvals/), which every
approval here links to.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from approvals.models import Approval, Delivery, DeliveryAttempt, Vote, Webhook
from audit.sensitive import redact
from core.admin import ReadOnlyAdminMixin


def _badge(kind: str, value: str, label: str) -> str:
    return format_html('<span class="wd-badge wd-{}-{}">{}</span>', kind, value, label)


def _pretty_json(text_or_document: Any) -> str:
    """Indented JSON with every masked (sensitive) value shown as the marker."""
    document = text_or_document
    if isinstance(text_or_document, str):
        try:
            document = json.loads(text_or_document)
        except ValueError:
            return format_html('<pre class="wd-schema wd-args">{}</pre>', text_or_document)
    # wd-args (approvals.css) keeps the block readable in the dark theme too.
    return format_html(
        '<pre class="wd-schema wd-args">{}</pre>', json.dumps(redact(document), indent=2, ensure_ascii=False)
    )


class VoteInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Each approver's verdict on the approval, in the order they came."""

    model = Vote
    extra = 0
    fields = ["at", "approver", "verdict", "comment"]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names
    can_delete = False


@admin.register(Approval)
class ApprovalAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every approval, the soonest due first, with its state and risk; decide on the queue page."""

    list_display = ["tool", "agent", "state_badge", "risk_badge", "created_at", "due_at", "settled_by_label"]
    list_filter = ["state", "risk", "tool"]
    list_select_related = ["agent"]
    search_fields = ["tool", "agent__slug", "rule_name", "settled_by_label", "comment"]
    date_hierarchy = "created_at"
    inlines = [VoteInline]

    class Media:
        css = {"all": ["approvals/approvals.css"]}  # state badges, light and dark

    fields = [
        "queue_page",
        "state_badge",
        "agent",
        "tool",
        "tool_call",
        "arguments",
        "arguments_digest",
        "rule",
        "rule_name",
        "reasons_pretty",
        "risk_badge",
        "required_approvals",
        "owner_may_not_decide_alone",
        "on_expiry",
        "created_at",
        "due_at",
        "settled_at",
        "settled_by_label",
        "comment",
        "notified_at",
        "reminded_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("agent", "tool_call", "rule")

    @admin.display(description="State", ordering="state")
    def state_badge(self, approval: Approval) -> str:
        return _badge("state", approval.state, approval.get_state_display())

    @admin.display(description="Risk", ordering="risk_rank")
    def risk_badge(self, approval: Approval) -> str:
        return _badge("risk", approval.risk, approval.risk)

    @admin.display(description="Arguments")
    def arguments(self, approval: Approval) -> str:
        return _pretty_json(approval.tool_call.arguments)

    @admin.display(description="Why it escalated")
    def reasons_pretty(self, approval: Approval) -> str:
        return _pretty_json(approval.reasons)

    @admin.display(description="Queue page")
    def queue_page(self, approval: Approval) -> str:
        url = reverse("approvals:detail", args=[approval.pk])
        label = "Decide on the queue page" if approval.is_pending else "Open on the queue page"
        return format_html('<a class="button" href="{}">{}</a>', url, label)


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Endpoints agents registered to hear when their escalated calls are settled."""

    list_display = ["url", "agent", "active", "created_at", "removed_at"]
    list_filter = ["active"]
    list_select_related = ["agent"]
    search_fields = ["url", "agent__slug"]
    fields = ["id", "agent", "url", "active", "created_at", "removed_at"]  # never the nonce
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names


class DeliveryAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Each POST of the delivery: when, what came back, how long it took, when the next one was due."""

    model = DeliveryAttempt
    extra = 0
    fields = ["number", "at", "status_code", "error", "duration_ms", "next_attempt_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names
    can_delete = False


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Events sent to webhooks, with every attempt; failed ones were given up after the last retry."""

    list_display = ["event", "webhook", "state_badge", "attempts", "created_at", "delivered_at"]
    list_filter = ["state", "event"]
    list_select_related = ["webhook"]
    search_fields = ["webhook__url", "approval__id"]
    date_hierarchy = "created_at"
    inlines = [DeliveryAttemptInline]

    class Media:
        css = {"all": ["approvals/approvals.css"]}

    fields = [
        "id",
        "event",
        "webhook",
        "approval",
        "state_badge",
        "attempts",
        "created_at",
        "delivered_at",
        "body_pretty",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="State", ordering="state")
    def state_badge(self, delivery: Delivery) -> str:
        return _badge("delivery", delivery.state, delivery.get_state_display())

    @admin.display(description="Body")
    def body_pretty(self, delivery: Delivery) -> str:
        return _pretty_json(delivery.body)
