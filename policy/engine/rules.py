"""Rules: CEL expressions over `agent`, `tool`, `args`, `context` and `now`, compiled once.

CEL (the condition language of Kubernetes admission policies and Envoy) is side-effect free
and terminates; expressions are parsed by the `common-expression-language` package, never by
Python's `eval`. Converting Python values into CEL values is the expensive part of an
evaluation, so the activation is built once per request with only the variables the
applicable rules reference, and shared by all of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import cel

VARIABLES = ("agent", "tool", "args", "context", "now")
_POSITION = re.compile(r"<input>:(\d+):(\d+)")
# `var.field` not followed by "(" (that would be a method call such as args.size()).
_SELECTION = re.compile(r"\b(agent|tool|args|context)\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")
# Variables bound by CEL's comprehension macros: args.exists(k, ...), list.map(x, ...).
_BOUND = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def field_needs(expression: str, variables: frozenset[str]) -> dict[str, frozenset[str] | None]:
    """For each map variable, the top-level fields the expression selects (None: it needs the whole map).

    Converting values into CEL dominates evaluation time, so a rule that only reads
    `args.amount` is given `{"amount": ...}`, which CEL evaluates exactly like the full map.
    Anything but plain `var.field` selections (iteration, `in`, `size`, indexing) keeps the map whole.
    """
    code = _STRING.sub("''", expression)  # a field name inside a string literal is not a selection
    needs: dict[str, frozenset[str] | None] = {}
    for name in variables:
        if name == "now":
            continue
        fields = {field for var, field in _SELECTION.findall(code) if var == name}
        rest = re.sub(rf"\b{name}\s*\.\s*[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\()", "", code)
        needs[name] = frozenset(fields) if fields and not re.search(rf"\b{name}\b", rest) else None
    return needs


class Effect(StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ESCALATE = "escalate"


class Mode(StrEnum):
    ENFORCE = "enforce"
    SHADOW = "shadow"


class ScopeKind(StrEnum):
    GLOBAL = "global"
    ROLE = "role"
    AGENT = "agent"
    TOOL = "tool"


class InvalidExpression(ValueError):
    """An expression CEL cannot parse, or one that names an unknown variable; with its position."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


def compile_expression(expression: str) -> Any:
    """Compile a CEL expression, refusing syntax errors (with line and column) and unknown variables."""
    if not expression.strip():
        raise InvalidExpression("The expression is empty.")
    try:
        program = cel.compile(expression)
    except (ValueError, RuntimeError) as error:
        text = str(error)
        match = _POSITION.search(text)
        detail = _POSITION.sub("", text.split("ERROR: ", 1)[-1].splitlines()[0]).lstrip(": ")
        detail = detail.removeprefix("Syntax error: ")
        if match:
            line, column = int(match.group(1)), int(match.group(2))
            raise InvalidExpression(f"Syntax error at line {line}, column {column}: {detail}", line, column) from None
        raise InvalidExpression(f"Syntax error: {detail}") from None
    bound = set(_BOUND.findall(_STRING.sub("''", expression)))
    unknown = sorted(set(program.variables()) - set(VARIABLES) - bound)
    if unknown:
        raise InvalidExpression(f"Unknown variable(s) {', '.join(unknown)}; rules can use {', '.join(VARIABLES)}.")
    return program


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule as the engine holds it: compiled, with the variables its expression reads."""

    id: str
    name: str
    expression: str
    effect: Effect
    mode: Mode
    scope_kind: ScopeKind
    scope_value: str  # role slug, agent id or tool name; "" for global
    priority: int
    message: str
    program: Any
    variables: frozenset[str]
    fields: dict[str, frozenset[str] | None]

    @classmethod
    def build(
        cls,
        *,
        id: str,
        name: str,
        expression: str,
        effect: str,
        mode: str,
        scope_kind: str,
        scope_value: str = "",
        priority: int = 100,
        message: str = "",
    ) -> CompiledRule:
        program = compile_expression(expression)
        variables = frozenset(program.variables()) & frozenset(VARIABLES)
        return cls(
            id=id,
            name=name,
            expression=expression,
            effect=Effect(effect),
            mode=Mode(mode),
            scope_kind=ScopeKind(scope_kind),
            scope_value=scope_value,
            priority=priority,
            message=message,
            program=program,
            variables=variables,
            fields=field_needs(expression, variables),
        )

    def applies_to(self, *, agent_id: str, role: str | None, tool: str) -> bool:
        if self.scope_kind is ScopeKind.GLOBAL:
            return True
        if self.scope_kind is ScopeKind.TOOL:
            return self.scope_value == tool
        if self.scope_kind is ScopeKind.AGENT:
            return self.scope_value == agent_id
        return role is not None and self.scope_value == role


class RuleEvaluationError(Exception):
    """A rule failed on these inputs (missing field, wrong type, non-boolean result)."""


def evaluate(rule: CompiledRule, activation: Any) -> bool:
    """Whether the rule's condition holds; anything but a boolean result is an error."""
    try:
        result = rule.program.execute(activation)
    except Exception as error:
        raise RuleEvaluationError(_describe(error)) from None
    if not isinstance(result, bool):
        raise RuleEvaluationError(f"The expression gave {type(result).__name__}, not a boolean.")
    return result


def _describe(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"No such field: {error.args[0] if error.args else error}. Guard optional fields with has()."
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'evaluation failed'}"


def activation(values: dict[str, Any]) -> Any:
    """One CEL environment for all the rules of a request (conversion happens once, on first use)."""
    return cel.Context(values)
