"""A small demo registry for `make run`: an anti-money-laundering team of agents.

Loaded through the services, so the demo has a history like any real registry. Idempotent:
agents and roles that already exist are left as they are.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.dispatch import Signal

from core.actors import Actor
from registry import services
from registry.choices import AgentStatus, ModelKind, RiskTier, SideEffect
from registry.models import Agent, Role, Tool

# Sent inside the loading transaction after the registry part is loaded (kwargs: actor), so
# higher layers (policy: contracts and rules) add their part of the demo without the registry
# importing them.
demo_registry_loaded = Signal()

TOOLS = [
    ("aml.alerts.read", "Read the queue of anti-money-laundering alerts.", SideEffect.READ, RiskTier.LOW),
    ("transactions.query", "Query an account's transactions over a date range.", SideEffect.READ, RiskTier.MEDIUM),
    ("case.file_report", "File a suspicious activity report for a case.", SideEffect.EXTERNAL, RiskTier.HIGH),
    ("payments.freeze_account", "Freeze an account's outgoing payments.", SideEffect.FINANCIAL, RiskTier.CRITICAL),
    ("email.send", "Send an e-mail.", SideEffect.EXTERNAL, RiskTier.MEDIUM),
]

ROLES = [
    ("aml-analyst", "AML analyst", "Reads alerts and transactions for anti-money-laundering triage."),
    ("case-writer", "Case writer", "Documents investigations and files reports."),
    ("orchestrator", "Orchestrator", "Plans work and delegates to specialised agents."),
]

ROLE_GRANTS = [
    ("aml-analyst", "aml.alerts.read", {}, 120, "Triage needs the alert queue."),
    ("aml-analyst", "transactions.query", {"limit": {"maximum": 500}}, 60, "Analysis of flagged accounts."),
    ("case-writer", "case.file_report", {"case_id": {"pattern": "^CASE-[0-9]{6}$"}}, 10, "Reports are filed per case."),
]

AGENTS: list[dict[str, Any]] = [
    {
        "slug": "aml-orchestrator",
        "name": "AML orchestrator",
        "role": "orchestrator",
        "model_name": "gpt-4.1",
        "model_kind": ModelKind.LLM,
        "risk_tier": RiskTier.HIGH,
        "team": "Financial crime",
        "description": "Plans each alert's investigation and hands steps to the specialised agents.",
        "scope": {
            "data_domains": ["alerts", "transactions", "cases"],
            "environments": ["production"],
            "max_delegation_depth": 2,
        },
    },
    {
        "slug": "alert-triage",
        "name": "Alert triage",
        "role": "aml-analyst",
        "model_name": "granite-3.1-2b",
        "model_kind": ModelKind.SLM,
        "risk_tier": RiskTier.MEDIUM,
        "team": "Financial crime",
        "supervisor": "aml-orchestrator",
        "description": "Scores incoming AML alerts and discards obvious false positives.",
        "scope": {"data_domains": ["alerts"], "environments": ["production"], "max_delegation_depth": 0},
    },
    {
        "slug": "transaction-analysis",
        "name": "Transaction analysis",
        "role": "aml-analyst",
        "model_name": "phi-4-mini",
        "model_kind": ModelKind.SLM,
        "risk_tier": RiskTier.HIGH,
        "team": "Financial crime",
        "supervisor": "aml-orchestrator",
        "description": "Follows the money across accounts linked to an alert.",
        "scope": {"data_domains": ["transactions"], "environments": ["production"], "max_delegation_depth": 0},
        "grants": [
            (
                "payments.freeze_account",
                {"amount": {"maximum": 1000000}, "currency": {"enum": ["EUR"]}},
                5,
                "Freeze accounts under investigation, in EUR, up to 1,000,000 (over 10,000 a human approves).",
            )
        ],
    },
    {
        "slug": "case-documentation",
        "name": "Case documentation",
        "role": "case-writer",
        "model_name": "llama-3.2-3b",
        "model_kind": ModelKind.SLM,
        "risk_tier": RiskTier.MEDIUM,
        "team": "Financial crime",
        "supervisor": "aml-orchestrator",
        "description": "Writes the case file and the suspicious activity report draft.",
        "scope": {"data_domains": ["cases"], "environments": ["production"], "max_delegation_depth": 0},
    },
    {
        "slug": "customer-service",
        "name": "Customer service",
        "role": None,
        "model_name": "qwen2.5-1.5b",
        "model_kind": ModelKind.SLM,
        "risk_tier": RiskTier.LOW,
        "team": "Retail",
        "status": AgentStatus.DRAFT,
        "description": "Answers customers' questions about their accounts; being onboarded.",
        "scope": {"data_domains": ["customers"], "environments": ["staging"], "max_delegation_depth": 0},
        "grants": [
            ("email.send", {"to": {"pattern": "^[^@]+@customers\\.example\\.com$"}}, 30, "Replies to customers only.")
        ],
    },
]


@transaction.atomic
def load_demo_registry(owner_username: str) -> int:
    """Create the demo roles, agents and grants owned by `owner_username`; returns agents added."""
    actor = Actor.system("demo-loader")
    owner = get_user_model().objects.get(username=owner_username)
    known_tools = set(Tool.objects.values_list("name", flat=True))
    for name, description, side_effect, risk in TOOLS:
        if name not in known_tools:
            services.tool_create(
                actor=actor, name=name, description=description, side_effect=side_effect, default_risk=risk
            )
    roles = {role.slug: role for role in Role.objects.all()}
    for slug, name, description in ROLES:
        if slug not in roles:
            roles[slug] = services.role_create(actor=actor, slug=slug, name=name, description=description)
            for role_slug, tool, constraints, rate, reason in ROLE_GRANTS:
                if role_slug == slug:
                    services.grant_create(
                        actor=actor,
                        role=roles[slug],
                        tool=tool,
                        constraints=constraints,
                        rate_limit_per_minute=rate,
                        reason=reason,
                    )
    added = 0
    for spec in AGENTS:
        if Agent.objects.filter(slug=spec["slug"]).exists():
            continue
        fields = {key: value for key, value in spec.items() if key not in {"grants", "status"}}
        fields["role"] = roles[spec["role"]] if spec["role"] else None
        fields["supervisor"] = Agent.objects.get(slug=spec["supervisor"]) if spec.get("supervisor") else None
        agent = services.agent_create(actor=actor, owner=owner, **fields)
        for tool, constraints, rate, reason in spec.get("grants", []):
            services.grant_create(
                actor=actor, agent=agent, tool=tool, constraints=constraints, rate_limit_per_minute=rate, reason=reason
            )
        if spec.get("status", AgentStatus.ACTIVE) == AgentStatus.ACTIVE:
            services.agent_transition(actor=actor, agent=agent, to=AgentStatus.ACTIVE)
        added += 1
    demo_registry_loaded.send(sender=load_demo_registry, actor=actor)
    return added
