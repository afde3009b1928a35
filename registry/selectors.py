"""Every read of the registry, owning its joins so query counts are decided here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from registry.choices import AgentStatus
from registry.models import Agent, ChangeRecord, Credential, Grant, Role, Tool


def agent_list() -> QuerySet[Agent]:
    """Agents with owner, role and supervisor joined, and their own grant count."""
    return Agent.objects.select_related("owner", "role", "supervisor").annotate(
        grant_count=Count("grants", distinct=True)
    )


def agent_count_by_status() -> dict[str, int]:
    """How many agents are in each lifecycle status, every status present (one grouped COUNT)."""
    rows = Agent.objects.order_by().values_list("status").annotate(count=Count("id"))
    return dict.fromkeys(AgentStatus.values, 0) | dict(rows)


def agent_get(agent_id: uuid.UUID | str) -> Agent:
    """One agent with its relations joined; raises Agent.DoesNotExist."""
    return agent_list().get(pk=agent_id)


def role_list() -> QuerySet[Role]:
    """Roles with how many agents hold each and how many grants each gives."""
    return Role.objects.annotate(agent_count=Count("agents", distinct=True), grant_count=Count("grants", distinct=True))


def tool_list() -> QuerySet[Tool]:
    """Tools with how many grants name each."""
    return Tool.objects.annotate(grant_count=Count("grants", distinct=True))


def grant_list() -> QuerySet[Grant]:
    """Grants with their holder and grantor joined."""
    return Grant.objects.select_related("agent", "role", "tool", "granted_by")


def credential_list(agent: Agent | None = None) -> QuerySet[Credential]:
    """Credentials (newest first), optionally of one agent. Never exposes hashes to callers."""
    queryset = Credential.objects.select_related("agent", "created_by", "replaced_by")
    return queryset.filter(agent=agent) if agent is not None else queryset


@dataclass(frozen=True)
class EffectiveGrant:
    """A grant as it applies to one agent, saying whether it comes from the agent or its role."""

    grant: Grant
    source: str  # "agent" or "role"


def agent_authority(agent: Agent, *, include_expired: bool = False) -> list[EffectiveGrant]:
    """An agent's authority: its own grants plus its role's, current ones only by default.

    When the agent and its role both grant a tool, the agent's own grant is listed first;
    the policy engine decides how they combine.
    """
    holder = Q(agent=agent)
    if agent.role_id is not None:
        holder |= Q(role_id=agent.role_id)
    # Own grants (no role) first on every database: PostgreSQL sorts NULLs last by default.
    grants = (
        Grant.objects.filter(holder)
        .select_related("role", "agent", "granted_by")
        .order_by("tool_id", F("role_id").asc(nulls_first=True))
    )
    now = timezone.now()
    return [
        EffectiveGrant(grant=grant, source="agent" if grant.agent_id else "role")
        for grant in grants
        if include_expired or grant.is_current(now)
    ]


def agent_history(agent: Agent) -> QuerySet[ChangeRecord]:
    """Every change to the agent itself, its grants and its credentials, newest first."""
    return ChangeRecord.objects.filter(agent=agent).order_by("-at", "-id")


def role_history(role: Role) -> QuerySet[ChangeRecord]:
    """Every change to the role and to the grants it gives, newest first."""
    return ChangeRecord.objects.filter(role=role).order_by("-at", "-id")
