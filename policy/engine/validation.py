"""JSON Schema validation: jsonschema-rs on the hot path, the `jsonschema` package as reference.

The fast validator answers valid/invalid for every call. Only when a call is invalid does the
reference implementation write the detailed report (each failing field's JSON Pointer and
message). Where the two could disagree, the stricter answer wins (docs/decisions/0005):
jsonschema-rs checks `format` and reads `\\d` as ASCII digits, so it refuses some arguments
that `jsonschema` would accept; a call is valid only if the fast validator says so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

MAX_REPORTED_ERRORS = 20
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _strict_date(value: str) -> bool:
    """RFC 3339 full-date that Python can also represent (jsonschema-rs alone accepts year 0000)."""
    if not _FULL_DATE.fullmatch(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _strict_regex(value: str) -> bool:
    """A pattern both regex engines compile (each accepts some syntax the other refuses)."""
    try:
        re.compile(value)
        jsonschema_rs.validator_for({"pattern": value})
    except (re.error, jsonschema_rs.ValidationError, ValueError):
        return False
    return True


# Formats where jsonschema-rs alone would accept what the reference rejects: checked by both rules.
STRICT_FORMATS = {"date": _strict_date, "regex": _strict_regex}
# Keywords under which a stricter check makes the whole schema more permissive.
_INVERTING = ("not", "oneOf", "if")
_NAME_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")


class InvalidSchema(ValueError):
    """A stored schema that is not a valid Draft 2020-12 schema, with where and why."""

    def __init__(self, message: str, pointer: str = "") -> None:
        super().__init__(message)
        self.pointer = pointer


def pointer(parts: Iterable[Any]) -> str:
    """The RFC 6901 JSON Pointer for a path of keys and indexes ("" is the whole document)."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def check_schema(schema: Any) -> None:
    """Refuse a schema that breaks the Draft 2020-12 metaschema or that the fast validator cannot compile."""
    if not isinstance(schema, dict | bool):
        raise InvalidSchema("A schema must be a JSON object (or a boolean).")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as error:
        raise InvalidSchema(
            f"Not a valid Draft 2020-12 schema: {error.message}", pointer(error.absolute_path)
        ) from None
    try:
        jsonschema_rs.Draft202012Validator(schema, validate_formats=True, formats=STRICT_FORMATS)
    except (jsonschema_rs.ValidationError, ValueError) as error:
        message = str(error).splitlines()[0]
        raise InvalidSchema(f"The schema cannot be compiled: {message}") from None
    inverted = _checks_under_inversion(schema, [], False)
    if inverted is not None:
        raise InvalidSchema(
            "`format` and `pattern` are not allowed under `not`, `oneOf` or `if`: Warden's two validators "
            "differ on some values, and there the stricter check would accept more, not less. Express the "
            "condition positively.",
            inverted,
        )


def _checks_under_inversion(node: Any, path: list[Any], inverted: bool) -> str | None:
    """The pointer of the first `format`/`pattern` inside `not`/`oneOf`/`if`, if any."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            found = _checks_under_inversion(item, [*path, index], inverted)
            if found is not None:
                return found
        return None
    if not isinstance(node, dict):
        return None
    if inverted and ("format" in node or "pattern" in node):
        return pointer(path)
    for key, child in node.items():
        if key in {"enum", "const", "examples", "default"}:
            continue
        if key in _NAME_MAPS and isinstance(child, dict):  # property names, not keywords
            for name, schema in child.items():
                found = _checks_under_inversion(schema, [*path, key, name], inverted)
                if found is not None:
                    return found
            continue
        found = _checks_under_inversion(child, [*path, key], inverted or key in _INVERTING)
        if found is not None:
            return found
    return None


@dataclass(frozen=True, slots=True)
class FieldError:
    """One failing field of a validation report."""

    pointer: str
    message: str
    keyword: str


class CompiledSchema:
    """A schema compiled once for fast checks, with the reference validator kept for reports."""

    __slots__ = ("_fast", "_reference", "schema")

    def __init__(self, schema: dict[str, Any] | bool) -> None:
        self.schema = schema
        self._fast = jsonschema_rs.Draft202012Validator(schema, validate_formats=True, formats=STRICT_FORMATS)
        self._reference: Draft202012Validator | None = None  # built on the first invalid call

    def is_valid(self, instance: Any) -> bool:
        return bool(self._fast.is_valid(instance))

    def report(self, instance: Any) -> list[FieldError]:
        """Each failing field, by JSON Pointer, in document order (at most MAX_REPORTED_ERRORS)."""
        if self._reference is None:
            self._reference = Draft202012Validator(self.schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
        errors = [
            FieldError(pointer(error.absolute_path), error.message, str(error.validator))
            for error in self._reference.iter_errors(instance)
        ]
        if not errors:
            # The fast validator is the stricter one here (format or regex dialect): use its words.
            errors = [
                FieldError(pointer(error.instance_path), error.message, _keyword(error.schema_path))
                for error in self._fast.iter_errors(instance)
            ]
        errors.sort(key=lambda error: (error.pointer, error.keyword))
        return errors[:MAX_REPORTED_ERRORS]


def _keyword(schema_path: Iterable[Any]) -> str:
    parts = [str(part) for part in schema_path]
    return parts[-1] if parts else ""
