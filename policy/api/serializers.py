"""Response documents of the tool-call API (built by hand on the hot path; described here for OpenAPI)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from policy import hooks
from policy.choices import DecisionOutcome, ResultStatus
from policy.engine.reasons import CODE_DESCRIPTIONS
from policy.models import ToolCall


class ReasonSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(
        help_text="Stable machine code: " + "; ".join(f"`{code}`: {text}" for code, text in CODE_DESCRIPTIONS.items())
    )
    message = serializers.CharField()
    pointer = serializers.CharField(required=False, help_text="JSON Pointer into the arguments.")
    rule = serializers.CharField(required=False, help_text="Id of the rule that gave this reason.")
    detail = serializers.DictField(required=False)


class ShadowResultSerializer(serializers.Serializer[Any]):
    rule = serializers.CharField()
    name = serializers.CharField()
    effect = serializers.CharField()
    matched = serializers.BooleanField()
    error = serializers.CharField(required=False)


class ToolCallRequestSerializer(serializers.Serializer[Any]):
    """Documentation of POST /api/v1/tool-calls (validated with TOOL_CALL_REQUEST_SCHEMA)."""

    tool = serializers.CharField(max_length=128)
    arguments = serializers.DictField(required=False)
    contract_version = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    context = serializers.DictField(required=False, allow_null=True)  # type: ignore[assignment]
    idempotency_key = serializers.CharField(max_length=128, required=False, allow_null=True)


class ResultRequestSerializer(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=ResultStatus.choices)
    output = serializers.JSONField(required=False)
    usage = serializers.DictField(required=False, allow_null=True)


class DecisionSerializer(serializers.Serializer[Any]):
    """The answer to a tool call request."""

    id = serializers.UUIDField()
    decision = serializers.ChoiceField(choices=DecisionOutcome.choices)
    reasons = ReasonSerializer(many=True)
    shadow = ShadowResultSerializer(many=True)
    contract_version = serializers.IntegerField(allow_null=True)
    policy_version = serializers.IntegerField()
    decision_token = serializers.CharField(allow_null=True, help_text="EdDSA JWT, for allow only.")
    expires_at = serializers.DateTimeField(allow_null=True)
    approval = serializers.DictField(
        required=False,
        help_text="Escalate only: the approval opened for this call (id, state, due_at, required approvals). "
        "Poll GET /tool-calls/<id>?wait=30 or register a webhook to learn the outcome.",
    )


class ToolCallSerializer(serializers.ModelSerializer[ToolCall]):
    """A recorded tool call, with its decision and, once reported, its result."""

    agent: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = ToolCall
        fields = [
            "id",
            "agent",
            "tool",
            "arguments",
            "arguments_digest",
            "context",
            "idempotency_key",
            "decision",
            "escalated",
            "settled_at",
            "reasons",
            "shadow",
            "contract_version",
            "policy_version",
            "latency_us",
            "token_expires_at",
            "result_status",
            "output",
            "usage",
            "cost",
            "contract_drift",
            "drift",
            "result_reported_at",
            "created_at",
        ]
        read_only_fields = fields


class ToolCallDetailSerializer(ToolCallSerializer):
    """One tool call as GET /tool-calls/<id> answers: the record, plus the token and approval when there are."""

    decision_token = serializers.CharField(
        allow_null=True, required=False, help_text="Only for the calling agent, only while an allow is valid."
    )
    approval = serializers.DictField(
        allow_null=True, required=False, help_text="For an escalated call: its approval's state, due time and votes."
    )

    guardian = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Guardians' assessments of the call and its output: guardian, stage, subject, value, action, "
        "reasons, scores per scorer (absent when no guardian judged it).",
    )

    class Meta(ToolCallSerializer.Meta):
        fields = [*ToolCallSerializer.Meta.fields, "decision_token", "approval", "guardian"]
        read_only_fields = fields


def decision_document(call: ToolCall) -> dict[str, Any]:
    """The POST /tool-calls response, built without a serializer (hot path)."""
    return {
        "id": str(call.pk),
        "decision": call.decision,
        "reasons": call.reasons,
        "shadow": call.shadow,
        "contract_version": call.contract_version,
        "policy_version": call.policy_version,
        "decision_token": getattr(call, "decision_token", None),
        "expires_at": call.token_expires_at.isoformat().replace("+00:00", "Z") if call.token_expires_at else None,
        # An escalated call says where its approval stands (opened in the same transaction), and a
        # pre-checked call what the guardians found; other calls cost no extra query.
        **(hooks.details(call) if call.escalated or getattr(call, "prechecked", False) else {}),
    }
