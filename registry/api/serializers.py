"""Serializers for the registry API. Related objects are named by slug (or username)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.serializers import StrictFieldsMixin
from registry.choices import AgentStatus
from registry.models import Agent, ChangeRecord, Credential, Grant, Role, Tool
from registry.schemas import SCOPE_SCHEMA, validate_scope
from registry.selectors import EffectiveGrant


class RoleSerializer(StrictFieldsMixin, serializers.ModelSerializer[Role]):
    """A role; `agent_count` and `grant_count` are read-only."""

    agent_count = serializers.IntegerField(read_only=True)
    grant_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Role
        fields = ["id", "slug", "name", "description", "agent_count", "grant_count", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


@extend_schema_field({key: value for key, value in SCOPE_SCHEMA.items() if key not in {"$schema", "title"}})
class ScopeField(serializers.JSONField):
    """An agent's scope, documented in the OpenAPI schema with the JSON Schema it is validated against."""


class AgentSerializer(StrictFieldsMixin, serializers.ModelSerializer[Agent]):
    """An agent's profile. Status is read-only here: change it with POST .../status."""

    owner = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        help_text="Username of the accountable human sponsor.",
    )
    role = serializers.SlugRelatedField(slug_field="slug", queryset=Role.objects.all(), allow_null=True, required=False)
    supervisor = serializers.SlugRelatedField(
        slug_field="slug",
        queryset=Agent.objects.all(),
        allow_null=True,
        required=False,
        help_text="Slug of the orchestrating agent.",
    )
    grant_count = serializers.IntegerField(read_only=True, help_text="The agent's own grants.")
    scope = ScopeField(
        required=False, validators=[validate_scope], help_text="Where the agent may act (default: nowhere)."
    )

    class Meta:
        model = Agent
        fields = [
            "id",
            "slug",
            "name",
            "description",
            "version",
            "endpoint_url",
            "owner",
            "team",
            "role",
            "status",
            "status_changed_at",
            "risk_tier",
            "scope",
            "model_name",
            "model_kind",
            "model_version",
            "supervisor",
            "max_calls_per_hour",
            "max_cost_per_day",
            "last_seen_at",
            "grant_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "status", "status_changed_at", "last_seen_at", "created_at", "updated_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        requested = self.initial_data.get("status") if isinstance(self.initial_data, dict) else None
        current = self.instance.status if self.instance is not None else AgentStatus.DRAFT
        if requested is not None and requested != current:
            raise serializers.ValidationError({"status": ["Status is changed with POST /api/v1/agents/<id>/status."]})
        return attrs


class GrantSummarySerializer(serializers.Serializer[EffectiveGrant]):
    """One entry of an agent's effective authority."""

    id = serializers.UUIDField(source="grant.id")
    tool = serializers.CharField(source="grant.tool_id")
    granted_via = serializers.ChoiceField(source="source", choices=["agent", "role"])
    constraints = serializers.JSONField(source="grant.constraints")
    rate_limit_per_minute = serializers.IntegerField(source="grant.rate_limit_per_minute", allow_null=True)
    valid_from = serializers.DateTimeField(source="grant.valid_from", allow_null=True)
    valid_until = serializers.DateTimeField(source="grant.valid_until", allow_null=True)


class AgentDetailSerializer(AgentSerializer):
    """An agent with its effective authority (own grants and its role's)."""

    authority = serializers.SerializerMethodField()
    allowed_transitions = serializers.SerializerMethodField()

    class Meta(AgentSerializer.Meta):
        fields = [*AgentSerializer.Meta.fields, "authority", "allowed_transitions"]

    def get_authority(self, agent: Agent) -> list[dict[str, Any]]:
        from registry.selectors import agent_authority

        return list(GrantSummarySerializer(agent_authority(agent), many=True).data)  # type: ignore[arg-type]

    def get_allowed_transitions(self, agent: Agent) -> list[str]:
        from registry.services import allowed_transitions

        return allowed_transitions(agent)


class AgentTransitionSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """A requested lifecycle move."""

    status = serializers.ChoiceField(choices=AgentStatus.choices)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class GrantSerializer(StrictFieldsMixin, serializers.ModelSerializer[Grant]):
    """A grant to exactly one agent or one role."""

    agent = serializers.SlugRelatedField(
        slug_field="slug", queryset=Agent.objects.all(), allow_null=True, required=False
    )
    role = serializers.SlugRelatedField(slug_field="slug", queryset=Role.objects.all(), allow_null=True, required=False)
    # Null when the grant was made by the system (a command, a migration) rather than a person.
    granted_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    tool = serializers.SlugRelatedField(
        slug_field="name",
        queryset=Tool.objects.all(),
        error_messages={"does_not_exist": "Unknown tool {value!r}: register it under Tools first."},
    )
    constraints = serializers.JSONField(required=False)

    class Meta:
        model = Grant
        fields = [
            "id",
            "agent",
            "role",
            "tool",
            "constraints",
            "rate_limit_per_minute",
            "valid_from",
            "valid_until",
            "granted_by",
            "reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "granted_by", "created_at", "updated_at"]
        # Uniqueness and the agent-xor-role rule are checked by the model's constraints.
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        agent = attrs.get("agent", getattr(self.instance, "agent", None))
        role = attrs.get("role", getattr(self.instance, "role", None))
        if (agent is None) == (role is None):
            raise serializers.ValidationError({"non_field_errors": ["Give exactly one of 'agent' or 'role'."]})
        return attrs


class CredentialSerializer(serializers.ModelSerializer[Credential]):
    """A credential's public facts: never the key or its hash."""

    agent: serializers.SlugRelatedField[Agent] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    state = serializers.SerializerMethodField()
    # Null when the key was issued by the system (a command, a task) rather than a person.
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = Credential
        fields = [
            "id",
            "agent",
            "name",
            "prefix",
            "state",
            "created_by",
            "created_at",
            "expires_at",
            "revoked_at",
            "revoked_reason",
            "last_used_at",
        ]
        read_only_fields = fields

    def get_state(self, credential: Credential) -> str:
        return credential.state()


class IssuedCredentialSerializer(CredentialSerializer):
    """A credential just issued, with its key: shown this once and never again."""

    key = serializers.CharField(read_only=True, help_text="The API key. Store it now: Warden keeps only a hash.")

    class Meta(CredentialSerializer.Meta):
        fields = [*CredentialSerializer.Meta.fields, "key"]
        read_only_fields = fields


class CredentialIssueSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Input for issuing a key."""

    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=120)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class CredentialRotateSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Input for rotating a key: how long the old key keeps working (default: not at all)."""

    grace_seconds = serializers.IntegerField(required=False, default=0, min_value=0, max_value=7 * 24 * 3600)


class CredentialRevokeSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    """Input for revoking a key."""

    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class ChangeRecordSerializer(serializers.ModelSerializer[ChangeRecord]):
    """One entry of the change history."""

    actor = serializers.SerializerMethodField()

    class Meta:
        model = ChangeRecord
        fields = [
            "id",
            "at",
            "actor",
            "action",
            "subject_type",
            "subject_id",
            "changed_fields",
            "before",
            "after",
            "reason",
        ]
        read_only_fields = fields

    def get_actor(self, record: ChangeRecord) -> dict[str, str]:
        return {"kind": record.actor_kind, "id": record.actor_id, "label": record.actor_label}
