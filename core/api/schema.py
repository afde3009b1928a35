"""OpenAPI generation: every operation documents the shared error document, and strict inputs say so."""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance

from core.api.serializers import ErrorSerializer, StrictFieldsMixin

_ERROR_STATUSES = {
    "400": "Invalid input (`invalid`, `malformed`).",
    "401": "Not authenticated.",
    "403": "Authenticated but lacking the permission.",
    "404": "Not found.",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "409": "Conflicts with the current state (`illegal_transition`, `conflict`, `in_use`).",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
}


class WardenAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema, adding the error responses every endpoint can give."""

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction=direction)
        for status_code, description in _ERROR_STATUSES.items():
            if status_code not in responses:
                response = self._get_response_for_code(ErrorSerializer, status_code)
                response["description"] = description
                responses[status_code] = response
        return responses

    def _map_serializer(self, serializer: Any, direction: str, bypass_extensions: bool = False) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_serializer(serializer, direction, bypass_extensions)
        # StrictFieldsMixin answers 400 to unknown keys: the request schema must not promise otherwise.
        if direction == "request" and isinstance(force_instance(serializer), StrictFieldsMixin):
            schema["additionalProperties"] = False
        return schema
