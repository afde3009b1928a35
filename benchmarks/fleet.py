"""The fleet the benchmarks decide for: roles, tools with contracts, agents, grants and rules.

One description, built two ways: as an engine `Snapshot` by hand (no Django, see
`decisions.py`) and in a database through the services (see `seed.py`), so the engine-only and
the HTTP measurements decide the same call under the same policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from policy.tests.builders import PAYMENT_SCHEMA

ROLES = ("finance", "analyst", "support", "ops")
RISK_TIERS = ("low", "medium", "high", "critical")
AGENT_COUNT = 50
BENCH_AGENT = "payer"  # the agent whose calls are measured: finance role, own grant, no rate limit
BENCH_TOOL = "payments.transfer"

# A valid payment using all eight properties of PAYMENT_SCHEMA (formats, patterns, enum, array).
BENCH_ARGUMENTS: dict[str, Any] = {
    "account": "DE89370400440532013000",
    "amount": 2500,
    "currency": "EUR",
    "reason": "Supplier invoice 2026-0042",
    "case_id": "CASE-004217",
    "requested_by": "ap-team@example.com",
    "effective_date": "2026-11-23",
    "tags": ["invoice", "q4", "supplier"],
}
BENCH_CONTEXT: dict[str, Any] = {"session_id": "bench-session", "purpose": "Pay an approved supplier invoice"}


def _object(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


_ID = {"type": "string", "pattern": "^[A-Z]{2,4}-[0-9]{4,8}$", "maxLength": 13}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_EMAIL = {"type": "string", "format": "email", "maxLength": 254}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    side_effect: str
    default_risk: str
    schema: dict[str, Any]


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec(BENCH_TOOL, "financial", "high", PAYMENT_SCHEMA),
    ToolSpec(
        "payments.refund",
        "financial",
        "high",
        _object({"payment_id": _ID, "amount": {"type": "number", "exclusiveMinimum": 0}}, ["payment_id", "amount"]),
    ),
    ToolSpec("ledger.read", "read", "low", _object({"account": {"type": "string", "maxLength": 34}}, ["account"])),
    ToolSpec(
        "crm.lookup",
        "read",
        "low",
        _object({"customer_id": _ID, "fields": {"type": "array", "items": {"type": "string"}}}, ["customer_id"]),
    ),
    ToolSpec(
        "crm.update", "write", "medium", _object({"customer_id": _ID, "changes": {"type": "object"}}, ["customer_id"])
    ),
    ToolSpec("tickets.create", "write", "low", _object({"title": _TEXT, "body": _TEXT}, ["title"])),
    ToolSpec(
        "docs.search", "read", "low", _object({"query": _TEXT, "limit": {"type": "integer", "maximum": 50}}, ["query"])
    ),
    ToolSpec(
        "email.send", "external", "medium", _object({"to": _EMAIL, "subject": _TEXT, "body": _TEXT}, ["to", "subject"])
    ),
    ToolSpec(
        "reports.export", "external", "medium", _object({"report": _ID, "format": {"enum": ["csv", "pdf"]}}, ["report"])
    ),
    ToolSpec("files.delete", "destructive", "critical", _object({"path": _TEXT}, ["path"])),
)


@dataclass(frozen=True)
class AgentSpec:
    slug: str
    role: str
    risk_tier: str
    team: str


def agents() -> list[AgentSpec]:
    """The bench agent first, then 49 others across the four roles and risk tiers."""
    fleet = [AgentSpec(BENCH_AGENT, "finance", "medium", "treasury")]
    for index in range(1, AGENT_COUNT):
        role = ROLES[index % len(ROLES)]
        fleet.append(AgentSpec(f"{role}-{index:02d}", role, RISK_TIERS[index % len(RISK_TIERS)], f"team-{index % 6}"))
    return fleet


@dataclass(frozen=True)
class GrantSpec:
    tool: str
    role: str | None = None  # a role grant ...
    agent: str | None = None  # ... or an agent's own grant
    constraints: dict[str, Any] = field(default_factory=dict)
    rate_limit_per_minute: int | None = None


def grants() -> list[GrantSpec]:
    role_grants = [
        GrantSpec(BENCH_TOOL, role="finance", constraints={"amount": {"maximum": 5000}}, rate_limit_per_minute=60),
        GrantSpec(
            "payments.refund", role="finance", constraints={"amount": {"maximum": 1000}}, rate_limit_per_minute=30
        ),
        GrantSpec("ledger.read", role="finance"),
        GrantSpec("reports.export", role="finance", rate_limit_per_minute=10),
        GrantSpec("crm.lookup", role="analyst"),
        GrantSpec("docs.search", role="analyst"),
        GrantSpec("ledger.read", role="analyst"),
        GrantSpec("reports.export", role="analyst", rate_limit_per_minute=10),
        GrantSpec("crm.lookup", role="support"),
        GrantSpec("crm.update", role="support", rate_limit_per_minute=120),
        GrantSpec("tickets.create", role="support"),
        GrantSpec(
            "email.send", role="support", constraints={"to": {"pattern": "@example\\.com$"}}, rate_limit_per_minute=20
        ),
        GrantSpec("docs.search", role="ops"),
        GrantSpec("tickets.create", role="ops"),
        GrantSpec("files.delete", role="ops", constraints={"path": {"pattern": "^/tmp/"}}, rate_limit_per_minute=5),
    ]
    # The bench agent's own grant: more specific than its role's, with constraints and no rate limit
    # (the HTTP benchmark measures allow decisions, not the rate limiter).
    own = [
        GrantSpec(
            BENCH_TOOL,
            agent=BENCH_AGENT,
            constraints={"amount": {"maximum": 25000}, "currency": {"enum": ["EUR", "USD"]}},
        )
    ]
    for spec in agents()[1::5]:
        tool = {"finance": "payments.refund", "analyst": "email.send", "support": "reports.export", "ops": "crm.lookup"}
        own.append(GrantSpec(tool[spec.role], agent=spec.slug, rate_limit_per_minute=15))
    return role_grants + own


@dataclass(frozen=True)
class RuleSpec:
    name: str
    expression: str
    effect: str
    scope: str = "global"  # global, tool or role
    target: str = ""  # tool name or role slug
    mode: str = "enforce"
    priority: int = 100
    message: str = ""


RULES: tuple[RuleSpec, ...] = (
    RuleSpec(
        "no-destructive-for-critical",
        "agent.risk_tier == 'critical' && tool.side_effect == 'destructive'",
        "deny",
        priority=10,
        message="Critical-tier agents may not run destructive tools.",
    ),
    RuleSpec(
        "external-needs-purpose",
        "tool.side_effect == 'external' && context.purpose == ''",
        "escalate",
        priority=20,
    ),
    RuleSpec("large-payments", "args.amount > 10000", "escalate", scope="tool", target=BENCH_TOOL, priority=30),
    RuleSpec(
        "foreign-currency-outside-treasury",
        "args.currency != 'EUR' && agent.team != 'treasury'",
        "deny",
        scope="tool",
        target=BENCH_TOOL,
        priority=40,
    ),
    RuleSpec(
        "finance-tag-limit",
        "has(args.tags) && size(args.tags) > 6",
        "deny",
        scope="role",
        target="finance",
        priority=50,
    ),
    RuleSpec(
        "shadow-medium-payments",
        "args.amount > 2000 && agent.risk_tier != 'low'",
        "escalate",
        scope="tool",
        target=BENCH_TOOL,
        mode="shadow",
        priority=60,
    ),
)


def bench_call_rules() -> list[str]:
    """The rules that should apply to the measured call: global, on its tool, or on its agent's role."""
    role = next(spec.role for spec in agents() if spec.slug == BENCH_AGENT)
    return [
        rule.name
        for rule in RULES
        if rule.scope == "global"
        or (rule.scope == "tool" and rule.target == BENCH_TOOL)
        or (rule.scope == "role" and rule.target == role)
    ]
