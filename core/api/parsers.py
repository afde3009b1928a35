"""A JSON parser that refuses bodies over WARDEN["API_MAX_REQUEST_BYTES"] with 413.

DRF reads request bodies without Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, so the limit
is enforced here, on the bytes actually read (Content-Length can be absent or wrong).
"""

from __future__ import annotations

import json
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from core.conf import warden_settings
from core.errors import RequestTooLarge


class BoundedJSONParser(JSONParser):
    """Parse a JSON body of at most the configured size; strict JSON only (no NaN)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = warden_settings.API_MAX_REQUEST_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(
                f"The request body is larger than {limit} bytes; send less data.",
                detail={"limit_bytes": limit},
            )
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"The request body is not valid JSON: {exc}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
