"""The sprawl report: the parts of the fleet nobody uses, nobody needs, or nobody looks after.

Five findings, each a fixed number of queries over the registry and the rollups' memory of
which agent used which tool (telemetry.models.AgentToolUse), never over the tool-call table:
idle agents, agents whose authority duplicates another's, grants never used, tools nobody may
use, and agents past their credentials' expiry.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.utils import timezone

from registry.choices import AgentStatus
from registry.models import Agent, Credential, Grant, Tool
from telemetry import rollups
from telemetry.models import AgentToolUse

# Agents that count: everything but retired ones (a draft that never acted is sprawl too).
LIVE = ~Q(status=AgentStatus.RETIRED)


@dataclass(frozen=True)
class IdleAgent:
    agent: Agent
    last_call_at: dt.datetime | None


@dataclass(frozen=True)
class DuplicateAuthority:
    agents: list[Agent]
    tools: list[str]
    same_role: bool


@dataclass(frozen=True)
class UnusedGrant:
    grant: Grant
    holders: int  # agents the grant gives authority to


@dataclass(frozen=True)
class ExpiredKeys:
    agent: Agent
    expired_at: dt.datetime
    valid_keys: int


@dataclass(frozen=True)
class SprawlReport:
    days: int
    idle: list[IdleAgent]
    duplicates: list[DuplicateAuthority]
    unused_grants: list[UnusedGrant]
    unusable_tools: list[Tool]
    expired: list[ExpiredKeys]

    @property
    def findings(self) -> int:
        return (
            len(self.idle)
            + len(self.duplicates)
            + len(self.unused_grants)
            + len(self.unusable_tools)
            + len(self.expired)
        )


def sprawl_report(days: int = 30, *, now: dt.datetime | None = None) -> SprawlReport:
    now = now or timezone.now()
    agents = list(Agent.objects.filter(LIVE).select_related("owner", "role").order_by("slug"))
    grants = [
        grant for grant in Grant.objects.select_related("agent", "role").order_by("tool_id") if grant.is_current(now)
    ]
    used = set(AgentToolUse.objects.values_list("agent_id", "tool"))
    return SprawlReport(
        days=days,
        idle=_idle(agents, days, now),
        duplicates=_duplicates(agents, grants),
        unused_grants=_unused(agents, grants, used),
        unusable_tools=_unusable(agents, grants),
        expired=_expired(agents, now),
    )


def _idle(agents: list[Agent], days: int, now: dt.datetime) -> list[IdleAgent]:
    """Agents (registered before the cut-off) that made no call in the last `days` days."""
    cutoff = now - dt.timedelta(days=days)
    last = rollups.last_call_by_agent()
    return [
        IdleAgent(agent=agent, last_call_at=last.get(agent.pk))
        for agent in agents
        if agent.created_at < cutoff and (last.get(agent.pk) is None or last[agent.pk] < cutoff)
    ]


def _authority(agent: Agent, grants: list[Grant]) -> frozenset[tuple[str, str, int | None]]:
    """What the agent may do: each tool with its constraints and rate limit, from its own and its role's grants."""
    return frozenset(
        (grant.tool_id, json.dumps(grant.constraints, sort_keys=True), grant.rate_limit_per_minute)
        for grant in grants
        if grant.agent_id == agent.pk or (grant.role_id is not None and grant.role_id == agent.role_id)
    )


def _duplicates(agents: list[Agent], grants: list[Grant]) -> list[DuplicateAuthority]:
    """Groups of agents holding exactly the same authority: candidates for one agent, or a role."""
    groups: dict[frozenset[tuple[str, str, int | None]], list[Agent]] = defaultdict(list)
    for agent in agents:
        authority = _authority(agent, grants)
        if authority:
            groups[authority].append(agent)
    return [
        DuplicateAuthority(
            agents=members,
            tools=sorted({tool for tool, _, _ in authority}),
            same_role=len({member.role_id for member in members}) == 1 and members[0].role_id is not None,
        )
        for authority, members in groups.items()
        if len(members) > 1
    ]


def _unused(agents: list[Agent], grants: list[Grant], used: set[tuple[Any, str]]) -> list[UnusedGrant]:
    """Current grants under which no holder ever called the tool."""
    by_role: dict[Any, list[Agent]] = defaultdict(list)
    for agent in agents:
        if agent.role_id is not None:
            by_role[agent.role_id].append(agent)
    unused = []
    for grant in grants:
        holders = [grant.agent] if grant.agent_id is not None else by_role.get(grant.role_id, [])
        if grant.agent_id is not None and grant.agent.status == AgentStatus.RETIRED:  # type: ignore[union-attr]
            continue
        if not any((holder.pk, grant.tool_id) in used for holder in holders if holder is not None):
            unused.append(UnusedGrant(grant=grant, holders=len(holders)))
    return unused


def _unusable(agents: list[Agent], grants: list[Grant]) -> list[Tool]:
    """Registered tools no live agent holds a current grant for, directly or through its role."""
    live_ids = {agent.pk for agent in agents}
    live_roles = {agent.role_id for agent in agents if agent.role_id is not None}
    granted = {
        grant.tool_id
        for grant in grants
        if (grant.agent_id is not None and grant.agent_id in live_ids) or grant.role_id in live_roles
    }
    return list(Tool.objects.exclude(name__in=granted).order_by("name"))


def _expired(agents: list[Agent], now: dt.datetime) -> list[ExpiredKeys]:
    """Live agents holding a key past its expiry that nobody revoked, with how many valid keys they still have."""
    expired: dict[Any, dt.datetime] = {}
    valid: dict[Any, int] = defaultdict(int)
    for agent_id, expires_at in Credential.objects.filter(revoked_at__isnull=True).values_list(
        "agent_id", "expires_at"
    ):
        if expires_at is not None and expires_at <= now:
            expired[agent_id] = max(expires_at, expired.get(agent_id, expires_at))
        else:
            valid[agent_id] += 1
    return [
        ExpiredKeys(agent=agent, expired_at=expired[agent.pk], valid_keys=valid[agent.pk])
        for agent in agents
        if agent.pk in expired
    ]
