"""What the guardian API shows: assessments with their scores, and quarantines."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from guardian.models import Assessment, Quarantine, ScoreRecord


class ScoreSerializer(serializers.ModelSerializer[ScoreRecord]):
    class Meta:
        model = ScoreRecord
        fields = ["scorer", "weight", "value", "label", "reasons", "latency_ms"]
        read_only_fields = fields


class AssessmentSerializer(serializers.ModelSerializer[Assessment]):
    guardian: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        source="guardian.agent", slug_field="slug", read_only=True
    )
    agent: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    scores = ScoreSerializer(many=True, read_only=True)

    class Meta:
        model = Assessment
        fields = [
            "id",
            "created_at",
            "guardian",
            "agent",
            "tool_call",
            "tool",
            "stage",
            "subject",
            "value",
            "action",
            "disagreement",
            "reasons",
            "scores",
        ]
        read_only_fields = fields


class QuarantineSerializer(serializers.ModelSerializer[Quarantine]):
    agent: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    guardian: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        source="guardian.agent", slug_field="slug", read_only=True, allow_null=True
    )
    is_open = serializers.BooleanField(read_only=True)

    class Meta:
        model = Quarantine
        fields = [
            "id",
            "agent",
            "guardian",
            "assessment",
            "tool_call",
            "reason",
            "started_at",
            "started_by_label",
            "is_open",
            "released_at",
            "released_by_label",
            "release_reason",
        ]
        read_only_fields = fields


class ReleaseRequestSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=2000, help_text="Why the agent may act again (required).")
    to = serializers.ChoiceField(choices=["active", "suspended"], default="active", required=False)
