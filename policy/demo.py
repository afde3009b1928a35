"""The demo policy for `make run`: contracts for the demo tools and the AML team's rules.

Loaded when the demo registry is (see registry.demo.demo_registry_loaded). Idempotent: a tool
that already has a contract, or a rule that already exists, is left as it is.
"""

from __future__ import annotations

from typing import Any

from core.actors import Actor
from policy import services
from policy.models import ContractVersion, Rule

_SCHEMA = "https://json-schema.org/draft/2020-12/schema"
_ACCOUNT = {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$", "maxLength": 34}
_CASE_ID = {"type": "string", "pattern": "^CASE-[0-9]{6}$", "maxLength": 11}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": _SCHEMA,
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


CONTRACTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "aml.alerts.read": (
        _object(
            {
                "status": {"enum": ["open", "in_review", "closed"]},
                "limit": {"type": "integer", "minimum": 1, "maximum": 500},
            },
            ["status"],
        ),
        {"type": "object", "properties": {"alerts": {"type": "array"}}, "required": ["alerts"]},
    ),
    "transactions.query": (
        _object(
            {
                "account": _ACCOUNT,
                "from": {"type": "string", "format": "date", "maxLength": 10},
                "to": {"type": "string", "format": "date", "maxLength": 10},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
            },
            ["account", "from", "to"],
        ),
        {"type": "object", "properties": {"transactions": {"type": "array"}}, "required": ["transactions"]},
    ),
    "case.file_report": (
        # case_id is deliberately optional in the schema: the rule below explains the denial.
        _object(
            {
                "case_id": _CASE_ID,
                "summary": {"type": "string", "minLength": 20, "maxLength": 5000},
                "accounts": {"type": "array", "items": _ACCOUNT, "minItems": 1, "maxItems": 20},
            },
            ["summary", "accounts"],
        ),
        {"type": "object", "properties": {"report_id": {"type": "string"}}, "required": ["report_id"]},
    ),
    "payments.freeze_account": (
        _object(
            {
                "account": _ACCOUNT,
                "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 100000000},
                "currency": {"enum": ["EUR", "USD", "GBP", "CHF"]},
                "case_id": _CASE_ID,
                "reason": {"type": "string", "minLength": 10, "maxLength": 1000},
            },
            ["account", "amount", "currency", "case_id", "reason"],
        ),
        {"type": "object", "properties": {"freeze_id": {"type": "string"}}, "required": ["freeze_id"]},
    ),
    "email.send": (
        _object(
            {
                "to": {"type": "string", "format": "email", "maxLength": 254},
                "subject": {"type": "string", "maxLength": 200},
                "body": {"type": "string", "maxLength": 20000},
            },
            ["to", "subject", "body"],
        ),
        {"type": "object", "properties": {"message_id": {"type": "string"}}, "required": ["message_id"]},
    ),
}

RULES: list[dict[str, Any]] = [
    {
        "name": "Freezes over 10,000 EUR need a human",
        "expression": "args.currency == 'EUR' && args.amount > 10000",
        "effect": "escalate",
        "scope": "tool",
        "scope_tool": "payments.freeze_account",
        "priority": 10,
        "message": "Freezing more than 10,000 EUR needs an approver's decision.",
    },
    {
        "name": "A report needs its case",
        "expression": "!has(args.case_id)",
        "effect": "deny",
        "scope": "tool",
        "scope_tool": "case.file_report",
        "priority": 10,
        "message": "A suspicious activity report must name its case (case_id).",
    },
    {
        "name": "Planned: freezes over 5,000 EUR need a human",
        "description": "Shadow run of the tighter limit compliance asked for; promote once its hit rate is reviewed.",
        "expression": "args.currency == 'EUR' && args.amount > 5000",
        "effect": "escalate",
        "mode": "shadow",
        "scope": "tool",
        "scope_tool": "payments.freeze_account",
        "priority": 20,
    },
]


def load_demo_policy(actor: Actor) -> None:
    for tool, (input_schema, output_schema) in CONTRACTS.items():
        if not ContractVersion.objects.filter(tool_id=tool).exists():
            services.contract_create(
                actor=actor,
                tool=tool,
                input_schema=input_schema,
                output_schema=output_schema,
                notes="Demo contract.",
                activate=True,
            )
    for spec in RULES:
        if not Rule.objects.filter(name=spec["name"]).exists():
            services.rule_create(actor=actor, **spec)


def on_demo_registry_loaded(sender: Any, actor: Actor, **kwargs: Any) -> None:
    load_demo_policy(actor)
