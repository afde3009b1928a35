"""JSON Schemas for the registry's JSON fields, checked on every save.

Both are strict (`additionalProperties: false`, bounded sizes): a scope or a grant
constraint that Warden does not understand is refused, never ignored.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator

# `(?!\n)`: Python's `$` (used by jsonschema) also matches before a trailing newline; ECMA's does not.
_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9_.-]*$(?!\n)", "maxLength": 64}

SCOPE_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Agent scope",
    "type": "object",
    "additionalProperties": False,
    "required": ["data_domains", "environments", "max_delegation_depth"],
    "properties": {
        "data_domains": {
            "description": "Data the agent may touch, e.g. customers, transactions.",
            "type": "array",
            "items": _NAME,
            "uniqueItems": True,
            "maxItems": 64,
        },
        "environments": {
            "description": "Where the agent may act, e.g. staging, production.",
            "type": "array",
            "items": _NAME,
            "uniqueItems": True,
            "maxItems": 16,
        },
        "max_delegation_depth": {
            "description": "How many agents deep a chain acting on this agent's behalf may go.",
            "type": "integer",
            "minimum": 0,
            "maximum": 8,
        },
    },
}

DEFAULT_SCOPE: dict[str, Any] = {"data_domains": [], "environments": [], "max_delegation_depth": 0}

# A grant narrows a tool's arguments with a safe subset of JSON Schema keywords per argument.
# Keys are top-level argument names or JSON Pointers ("/recipient/country") to nested ones.
_NUMBER = {"type": "number"}
CONSTRAINTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Grant constraints",
    "type": "object",
    "maxProperties": 64,
    "propertyNames": {"pattern": "^(/[^/]+)+$|^[A-Za-z_][A-Za-z0-9_]{0,63}$(?!\n)", "maxLength": 256},
    "additionalProperties": {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "maximum": _NUMBER,
            "minimum": _NUMBER,
            "exclusiveMaximum": _NUMBER,
            "exclusiveMinimum": _NUMBER,
            "enum": {"type": "array", "minItems": 1, "maxItems": 256},
            "const": {},
            "maxLength": {"type": "integer", "minimum": 0},
            "minLength": {"type": "integer", "minimum": 0},
            "pattern": {"type": "string", "format": "regex", "maxLength": 512},
            "maxItems": {"type": "integer", "minimum": 0},
        },
    },
}

_SCOPE_VALIDATOR = Draft202012Validator(SCOPE_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)
_CONSTRAINTS_VALIDATOR = Draft202012Validator(CONSTRAINTS_SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _validate(validator: Draft202012Validator, value: Any, what: str) -> None:
    errors = sorted(validator.iter_errors(value), key=lambda error: list(error.absolute_path))
    if errors:
        messages = [
            f"{what} at '/{'/'.join(str(part) for part in error.absolute_path)}': {error.message}"
            for error in errors[:10]
        ]
        raise ValidationError(messages)


def validate_scope(value: Any) -> None:
    """Field validator: the value is a complete, well-formed agent scope."""
    _validate(_SCOPE_VALIDATOR, value, "scope")


def validate_constraints(value: Any) -> None:
    """Field validator: the value is a well-formed set of per-argument grant constraints.

    A `pattern` must compile in both regex engines: the policy engine checks constraints with
    jsonschema-rs (ECMA-262 syntax), the reference with Python's `re`; each accepts some syntax the
    other refuses (`a{,3}` and `\\Z` are Python-only, `\\p{L}` is ECMA-only).
    """
    _validate(_CONSTRAINTS_VALIDATOR, value, "constraints")
    errors = []
    for argument, keywords in value.items():
        pattern = keywords.get("pattern")
        if pattern is None:
            continue
        try:
            jsonschema_rs.validator_for({"pattern": pattern})
        except (jsonschema_rs.ValidationError, ValueError):
            errors.append(
                f"constraints at '/{argument}/pattern': {pattern!r} is not a regular expression both "
                "Python and ECMA-262 accept; use the common subset (e.g. {0,3} rather than {,3}, $ rather than \\Z)."
            )
    if errors:
        raise ValidationError(errors)
