"""Seed a fresh Warden database with the benchmark fleet, through the services like a real operator.

Run by `decisions.py` in a subprocess whose environment names the database
(`DJANGO_SETTINGS_MODULE=benchmarks.settings`, `DATABASE_URL`, `WARDEN_VAR_DIR`), after
`manage.py migrate`. Also creates the `bench_baseline` table of the baseline view and the
decision-token signing key (so the gunicorn workers do not race to create it). Prints one JSON
line: the bench agent's key and id, and how many rules apply to the measured call.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BASELINE_DDL = {
    "postgresql": (
        "CREATE TABLE bench_baseline (id uuid PRIMARY KEY, agent_id uuid NOT NULL, tool varchar(128) NOT NULL, "
        "arguments jsonb NOT NULL, created_at timestamp with time zone NOT NULL)"
    ),
    "sqlite": (
        "CREATE TABLE bench_baseline (id char(32) PRIMARY KEY, agent_id char(32) NOT NULL, "
        "tool varchar(128) NOT NULL, arguments text NOT NULL, created_at datetime NOT NULL)"
    ),
}


def seed() -> dict[str, Any]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from benchmarks import fleet
    from core.actors import Actor
    from policy import services as policy_services
    from policy import snapshots, tokens
    from registry import services
    from registry.models import Agent, Role

    actor = Actor.system("bench")
    owner = get_user_model().objects.create_user("bench-owner", "bench-owner@example.com", "bench-password-not-used")
    roles: dict[str, Role] = {
        slug: services.role_create(actor=actor, slug=slug, name=slug.title()) for slug in fleet.ROLES
    }
    for spec in fleet.TOOLS:
        tool = services.tool_create(
            actor=actor, name=spec.name, side_effect=spec.side_effect, default_risk=spec.default_risk
        )
        policy_services.contract_create(actor=actor, tool=tool, input_schema=spec.schema, activate=True)
    agents: dict[str, Agent] = {}
    for agent_spec in fleet.agents():
        agent = services.agent_create(
            actor=actor,
            slug=agent_spec.slug,
            name=agent_spec.slug.replace("-", " ").title(),
            owner=owner,
            role=roles[agent_spec.role],
            risk_tier=agent_spec.risk_tier,
            team=agent_spec.team,
            model_name="bench-model",
        )
        agents[agent_spec.slug] = services.agent_transition(actor=actor, agent=agent, to="active")
    for grant in fleet.grants():
        holder: dict[str, Any] = (
            {"agent": agents[grant.agent]} if grant.agent is not None else {"role": roles[str(grant.role)]}
        )
        services.grant_create(
            actor=actor,
            reason="Benchmark fleet.",
            tool=grant.tool,
            constraints=grant.constraints,
            rate_limit_per_minute=grant.rate_limit_per_minute,
            **holder,
        )
    for rule in fleet.RULES:
        target: dict[str, Any] = {}
        if rule.scope == "tool":
            target = {"scope_tool": rule.target}
        elif rule.scope == "role":
            target = {"scope_role": roles[rule.target]}
        policy_services.rule_create(
            actor=actor,
            name=rule.name,
            expression=rule.expression,
            effect=rule.effect,
            mode=rule.mode,
            scope=rule.scope,
            priority=rule.priority,
            message=rule.message,
            **target,
        )
    bench_agent = agents[fleet.BENCH_AGENT]
    issued = services.credential_issue(actor=actor, agent=bench_agent, name="bench")

    with connection.cursor() as cursor:
        cursor.execute(BASELINE_DDL[connection.vendor])
    tokens.signing_key()  # creates the key file under WARDEN_VAR_DIR once, before the workers start

    # What the server will see: the rules that apply to the measured call.
    snapshot = snapshots.build().snapshot
    view = snapshot.agents[str(bench_agent.pk)]
    applicable = [
        rule.name for rule in snapshot.rules if rule.applies_to(agent_id=view.id, role=view.role, tool=fleet.BENCH_TOOL)
    ]
    return {
        "key": issued.key,
        "agent_id": str(bench_agent.pk),
        "vendor": connection.vendor,
        "agents": len(snapshot.agents),
        "tools": len(snapshot.tools),
        "rules": len(snapshot.rules),
        "applicable_rules": applicable,
    }


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    import django

    django.setup()
    sys.stdout.write(json.dumps(seed()) + "\n")


if __name__ == "__main__":
    main()
