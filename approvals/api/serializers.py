"""Documents of the approvals API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from approvals.choices import Verdict
from approvals.models import Approval, Delivery, DeliveryAttempt, Vote, Webhook


class VoteSerializer(serializers.ModelSerializer[Vote]):
    approver: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = Vote
        fields = ["approver", "verdict", "comment", "at"]
        read_only_fields = fields


class ApprovalSerializer(serializers.ModelSerializer[Approval]):
    agent: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    votes = VoteSerializer(many=True, read_only=True)
    arguments = serializers.JSONField(source="tool_call.arguments", read_only=True)

    class Meta:
        model = Approval
        fields = [
            "id",
            "kind",
            "tool_call",
            "agent",
            "tool",
            "arguments",
            "arguments_digest",
            "rule",
            "rule_name",
            "reasons",
            "risk",
            "required_approvals",
            "owner_may_not_decide_alone",
            "on_expiry",
            "state",
            "created_at",
            "due_at",
            "settled_at",
            "settled_by_label",
            "comment",
            "votes",
        ]
        read_only_fields = fields


class VoteRequestSerializer(serializers.Serializer[Any]):
    verdict = serializers.ChoiceField(choices=Verdict.choices)
    comment = serializers.CharField(required=False, allow_blank=True, help_text="Required to reject.")


class CancelRequestSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(help_text="Why the call is withdrawn.")


class WebhookSerializer(serializers.ModelSerializer[Webhook]):
    agent: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Webhook
        fields = ["id", "agent", "url", "active", "created_at", "removed_at"]
        read_only_fields = fields


class WebhookCreateSerializer(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=500)


class RegisteredWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(help_text="Shown once: verify each delivery's Warden-Signature with it.")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class DeliveryAttemptSerializer(serializers.ModelSerializer[DeliveryAttempt]):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "at", "status_code", "error", "duration_ms", "next_attempt_at"]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer[Delivery]):
    attempt_log = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Delivery
        fields = [
            "id",
            "webhook",
            "approval",
            "event",
            "state",
            "attempts",
            "created_at",
            "delivered_at",
            "attempt_log",
        ]
        read_only_fields = fields
