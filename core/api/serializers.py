"""Serializer helpers shared by every app's API."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer[Any]):
    """The body of every API error (documented in the OpenAPI schema)."""

    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid`, `not_found`.")
    message = serializers.CharField(help_text="What went wrong and how to fix it.")
    detail = serializers.JSONField(help_text="Structured detail: per-field messages for `invalid`.")


class StrictFieldsMixin:
    """Refuse input keys the serializer does not know, instead of silently ignoring them.

    A misspelt field (`risk_teir`) would otherwise be dropped and the request accepted.
    """

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            known = set(self.fields)  # type: ignore[attr-defined]
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)  # type: ignore[misc]
