"""The hardening report of an input schema: what an attacker could slip past it.

A contract's schema is the first line of defence against a prompt-injected agent; a schema
that accepts any extra property, any length of string or any number of items lets smuggled
instructions, oversized payloads and unexpected parameters through. Pure function, no Django.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from policy.engine.validation import pointer

# Sub-schema keywords to walk, and whether each holds one schema, a list, or a name -> schema map.
_ONE = (
    "additionalProperties",
    "items",
    "contains",
    "not",
    "if",
    "then",
    "else",
    "unevaluatedProperties",
    "unevaluatedItems",
    "propertyNames",
)
_LIST = ("prefixItems", "allOf", "anyOf", "oneOf")
_MAP = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_BOUNDED_STRING = ("maxLength", "enum", "const")


@dataclass(frozen=True)
class Finding:
    """One weakness, at a place in the schema (a JSON Pointer into the schema document)."""

    code: str
    at: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "at": self.at or "/", "message": self.message}


def hardening_report(schema: Any) -> list[Finding]:
    """Every finding for `schema`, in document order."""
    if schema is True or schema == {}:
        return [Finding("accepts_anything", "", "The schema accepts any value at all.")]
    return list(_walk(schema, []))


def _types(node: dict[str, Any]) -> set[str]:
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {item for item in declared if isinstance(item, str)}
    types = set()
    if "properties" in node or "required" in node:
        types.add("object")
    if "items" in node or "prefixItems" in node:
        types.add("array")
    return types


def _walk(node: Any, path: list[str | int]) -> Iterator[Finding]:
    if not isinstance(node, dict):
        return
    at = pointer(path)
    types = _types(node)
    if "object" in types:
        if node.get("additionalProperties") is not False and node.get("unevaluatedProperties") is not False:
            yield Finding(
                "additional_properties_allowed",
                at,
                "Object accepts properties the contract does not name; set additionalProperties: false.",
            )
        if node.get("properties") and not node.get("required"):
            yield Finding("no_required", at, "Object names properties but requires none; list them under required.")
    if "string" in types and not any(key in node for key in _BOUNDED_STRING):
        yield Finding("unbounded_string", at, "String has no maxLength (or enum/const): any length is accepted.")
    if "array" in types and "maxItems" not in node and not (node.get("items") is False and "prefixItems" in node):
        yield Finding("unbounded_array", at, "Array has no maxItems: any number of items is accepted.")
    for key in _ONE:
        if isinstance(node.get(key), dict):
            yield from _walk(node[key], [*path, key])
    for key in _LIST:
        for index, child in enumerate(node.get(key) or []):
            yield from _walk(child, [*path, key, index])
    for key in _MAP:
        children = node.get(key)
        if isinstance(children, dict):
            for name, child in children.items():
                yield from _walk(child, [*path, key, name])
