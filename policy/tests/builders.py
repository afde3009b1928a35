"""Hand-built snapshots for engine tests: no database, no Django."""

from __future__ import annotations

import datetime as dt
from typing import Any

from policy.engine import AgentView, CallContext, Constraint, ContractView, Counters, GrantView, Request, Snapshot
from policy.engine.rules import CompiledRule
from policy.engine.snapshot import Limits, ToolView
from policy.engine.validation import CompiledSchema

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)

PAYMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["account", "amount", "currency", "reason"],
    "properties": {
        "account": {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$", "maxLength": 34},
        "amount": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000000},
        "currency": {"enum": ["EUR", "USD", "GBP"]},
        "reason": {"type": "string", "minLength": 3, "maxLength": 500},
        "case_id": {"type": "string", "pattern": "^CASE-[0-9]{6}$", "maxLength": 11},
        "requested_by": {"type": "string", "format": "email", "maxLength": 254},
        "effective_date": {"type": "string", "format": "date", "maxLength": 10},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 32}, "maxItems": 8},
    },
}

VALID_PAYMENT = {"account": "DE89370400440532013000", "amount": 2500, "currency": "EUR", "reason": "Fraud case"}


def agent(slug: str, *, status: str = "active", role: str | None = "analyst", depth: int = 0, **kw: Any) -> AgentView:
    return AgentView(
        id=f"id-{slug}",
        slug=slug,
        name=slug.title(),
        status=status,
        role=role,
        risk_tier="medium",
        max_delegation_depth=depth,
        **kw,
    )


def grant(tool: str, *, source: str = "agent", constraints: dict[str, Any] | None = None, **kw: Any) -> GrantView:
    return GrantView(
        id=f"g-{tool}-{source}",
        tool=tool,
        source=source,
        constraints=tuple(Constraint.build(k, v) for k, v in (constraints or {}).items()),
        **kw,
    )


def contract(tool: str, schema: Any, *, version: int = 1, status: str = "active", output: Any = None) -> ContractView:
    return ContractView(
        id=f"c-{tool}-{version}",
        tool=tool,
        version=version,
        status=status,
        input=CompiledSchema(schema),
        output=CompiledSchema(output if output is not None else {}),
    )


def rule(
    expression: str,
    effect: str = "deny",
    *,
    mode: str = "enforce",
    scope: str = "global",
    target: str = "",
    priority: int = 100,
    name: str | None = None,
) -> CompiledRule:
    return CompiledRule.build(
        id=name or expression,
        name=name or expression,
        expression=expression,
        effect=effect,
        mode=mode,
        scope_kind=scope,
        scope_value=target,
        priority=priority,
    )


def snapshot(
    *,
    agents: list[AgentView] | None = None,
    grants: list[tuple[str, GrantView]] | None = None,
    tools: list[ToolView] | None = None,
    contracts: list[ContractView] | None = None,
    rules: list[CompiledRule] | None = None,
    limits: Limits | None = None,
) -> Snapshot:
    """By default: one active agent `payer` granted payments.transfer under PAYMENT_SCHEMA."""
    return Snapshot.build(
        version=7,
        agents=agents if agents is not None else [agent("payer")],
        grants=grants if grants is not None else [("id-payer", grant("payments.transfer"))],
        tools=tools if tools is not None else [ToolView("payments.transfer", "financial", "high")],
        contracts=contracts if contracts is not None else [contract("payments.transfer", PAYMENT_SCHEMA)],
        rules=rules or [],
        limits=limits,
    )


def request(
    arguments: Any = None,
    *,
    agent_id: str = "id-payer",
    tool: str = "payments.transfer",
    on_behalf_of: tuple[str, ...] = (),
    counters: Counters | None = None,
    contract_version: int | None = None,
) -> Request:
    return Request(
        agent_id=agent_id,
        tool=tool,
        arguments=dict(VALID_PAYMENT) if arguments is None else arguments,
        now=NOW,
        contract_version=contract_version,
        context=CallContext(session_id="s-1", on_behalf_of=on_behalf_of, purpose="test"),
        counters=counters or Counters(),
    )
