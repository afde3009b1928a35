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
from core.errors import InvalidInput, RequestTooLarge, WardenError


class BoundedJSONParser(JSONParser):
    """Parse a JSON body of at most the configured size; strict JSON only (no NaN)."""

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        limit = warden_settings.API_MAX_REQUEST_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        try:
            return parse_json_body(raw)
        except MalformedBody as exc:
            raise ParseError(exc.message) from exc


class MalformedBody(WardenError):
    """The body is not JSON at all (outside DRF; inside, DRF's ParseError says the same)."""

    code = "malformed"
    status = 400


def parse_json_body(raw: bytes) -> Any:
    """Parse an API request body: at most the configured size, strict JSON, storable text."""
    limit = warden_settings.API_MAX_REQUEST_BYTES
    if len(raw) > limit:
        raise RequestTooLarge(
            f"The request body is larger than {limit} bytes; send less data.",
            detail={"limit_bytes": limit},
        )
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedBody(f"The request body is not valid JSON: {exc}") from exc
    if b"\\u" in raw:  # only escapes can smuggle NUL or an unpaired surrogate into a string
        check_text(data)
    return data


def check_text(value: Any, path: str = "") -> None:
    """Refuse text no database can store: NUL characters and unpaired UTF-16 surrogates.

    PostgreSQL rejects both (in text and in jsonb), SQLite would store them: refusing them here
    gives the same clear 400 on every database instead of a 500 on one.
    """
    if isinstance(value, str):
        if "\x00" in value or not _encodable(value):
            raise InvalidInput(
                "Text must not contain NUL characters or unpaired surrogates.",
                detail={path or "/": ["Contains a NUL character or an unpaired surrogate."]},
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, path)
            check_text(item, f"{path}/{str(key).replace('~', '~0').replace('/', '~1')}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{path}/{index}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
