"""Sensitive fields: a contract marks them, the trail keeps only salted digests of their values.

A schema marks a field with `"x-warden-sensitive": true`. Its value is replaced, wherever
Warden stores it (the tool call, the audit payload, the pages, the API), by

    {"$sensitive": {"alg": "sha256", "salt": "<32 hex>", "digest": "<64 hex>"}}

where digest = SHA-256(salt bytes || RFC 8785 canonical JSON of the value). The salt is random
per value, so equal values do not look equal across records; an auditor who holds the value
proves it was the one recorded with `matches(value, masked)` (or three lines of any language).
A salted digest hides a value only as well as the value resists guessing: a 4-digit PIN can be
found by trying all 10,000; mark fields whose disclosure matters and keep them out of outputs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable
from typing import Any

from core.canonical import canonical_json

MARK = "x-warden-sensitive"
MASK_KEY = "$sensitive"
ANY_ITEM = "*"

Path = tuple[str | int, ...]


def sensitive_paths(schema: Any) -> tuple[Path, ...]:
    """Where a schema marks values sensitive: property names, `*` for every array item."""
    found: list[Path] = []
    _walk(schema, (), found)
    return tuple(dict.fromkeys(found))  # unique, in schema order


def _walk(schema: Any, at: Path, found: list[Path]) -> None:
    if not isinstance(schema, dict):
        return
    if schema.get(MARK) is True:
        found.append(at)
        return
    for name, child in (schema.get("properties") or {}).items():
        _walk(child, (*at, name), found)
    if isinstance(schema.get("items"), dict):
        _walk(schema["items"], (*at, ANY_ITEM), found)
    for index, child in enumerate(schema.get("prefixItems") or []):
        _walk(child, (*at, index), found)
    for keyword in ("allOf", "anyOf", "oneOf"):
        for branch in schema.get(keyword) or []:
            _walk(branch, at, found)
    for keyword in ("then", "else"):
        _walk(schema.get(keyword), at, found)


def digest(value: Any, salt: bytes) -> str:
    return hashlib.sha256(salt + canonical_json(value)).hexdigest()


def mask_value(value: Any) -> dict[str, Any]:
    salt = os.urandom(16)
    return {MASK_KEY: {"alg": "sha256", "salt": salt.hex(), "digest": digest(value, salt)}}


def is_masked(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(MASK_KEY), dict)


def matches(value: Any, masked: Any) -> bool:
    """Whether `value` is the one a masked entry was made from."""
    if not is_masked(masked):
        return False
    entry = masked[MASK_KEY]
    try:
        salt = bytes.fromhex(entry["salt"])
    except (KeyError, TypeError, ValueError):
        return False
    return hmac.compare_digest(digest(value, salt), str(entry.get("digest", "")))


def mask(document: Any, paths: Iterable[Path]) -> Any:
    """A copy of `document` with the value at each path masked; the document itself is untouched."""
    paths = tuple(paths)
    if not paths:
        return document
    if () in paths:
        return mask_value(document)
    return _mask(document, paths)


def _mask(node: Any, paths: tuple[Path, ...]) -> Any:
    if isinstance(node, dict):
        heads = {path[0] for path in paths if isinstance(path[0], str) and path[0] != ANY_ITEM}
        if not heads:
            return node
        copy = dict(node)
        for head in heads:
            if head in copy:
                rest = tuple(path[1:] for path in paths if path[0] == head)
                copy[head] = mask_value(copy[head]) if () in rest else _mask(copy[head], rest)
        return copy
    if isinstance(node, list):
        items = list(node)
        for index, item in enumerate(items):
            rest = tuple(path[1:] for path in paths if path[0] == ANY_ITEM or path[0] == index)
            if rest:
                items[index] = mask_value(item) if () in rest else _mask(item, rest)
        return items
    return node


def redact(document: Any) -> Any:
    """For display: every masked value shown as a short marker instead of its digest."""
    if is_masked(document):
        return "•••••• (sensitive)"
    if isinstance(document, dict):
        return {key: redact(value) for key, value in document.items()}
    if isinstance(document, list):
        return [redact(item) for item in document]
    return document


def omit(document: Any) -> Any:
    """A copy of a masked document with its masked values left out, digests included; None if it is all masked.

    For places that must not carry a sensitive value in any form, not even a salted digest
    (trace attributes): masked members of objects are dropped, masked array items become null
    so the positions of the others still mean what they meant.
    """
    if is_masked(document):
        return None
    if isinstance(document, dict):
        return {key: omit(value) for key, value in document.items() if not is_masked(value)}
    if isinstance(document, list):
        return [omit(item) for item in document]
    return document


def covers(pointer: str, paths: Iterable[Path]) -> bool:
    """Whether the JSON Pointer lies at or under a sensitive path."""
    parts = [raw.replace("~1", "/").replace("~0", "~") for raw in pointer.split("/")[1:]]
    for path in paths:
        if len(path) <= len(parts) and all(
            step == ANY_ITEM or str(step) == part for step, part in zip(path, parts, strict=False)
        ):
            return True
    return False


def redact_messages(errors: list[dict[str, Any]], paths: Iterable[Path]) -> list[dict[str, Any]]:
    """Errors about sensitive values keep their pointer and keyword but lose the message quoting the value."""
    paths = tuple(paths)
    if not paths:
        return errors
    redacted = []
    for error in errors:
        pointer = error.get("pointer")
        if isinstance(pointer, str) and covers(pointer, paths):
            keyword = (error.get("detail") or {}).get("keyword") or error.get("keyword")
            why = f" ({keyword})" if keyword else ""
            error = {**error, "message": f"{pointer or '/'}: the sensitive value here breaks the contract{why}."}
        redacted.append(error)
    return redacted
