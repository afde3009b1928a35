"""The policy snapshot: everything the engine needs, compiled, immutable, free of Django.

A snapshot is built from the database by `policy.snapshots` and shared by every request a
process serves until the policy version moves. Tests build snapshots by hand.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from policy.engine.rules import CompiledRule
from policy.engine.validation import CompiledSchema, pointer

ACTIVE = "active"
QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class AgentView:
    id: str
    slug: str
    name: str
    status: str
    role: str | None  # role slug
    risk_tier: str
    team: str = ""
    max_delegation_depth: int = 0
    max_calls_per_hour: int | None = None
    max_cost_per_day: Decimal | None = None
    scope: Mapping[str, Any] = field(default_factory=dict)
    supervisor_id: str | None = None  # the orchestrating agent, whose quarantine contains this one

    def as_cel(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "slug": self.slug,
            "name": self.name,
            "status": self.status,
            "role": self.role or "",
            "risk_tier": self.risk_tier,
            "team": self.team,
            "scope": dict(self.scope),
        }


@dataclass(frozen=True, slots=True)
class ToolView:
    name: str
    side_effect: str
    default_risk: str
    precheck: bool = False  # guardians' fast scorers run on the decision path (policy.hooks.pre_decision)

    def as_cel(self) -> dict[str, Any]:
        return {"name": self.name, "side_effect": self.side_effect, "default_risk": self.default_risk}


@dataclass(frozen=True, slots=True)
class Constraint:
    """One grant constraint: the JSON Schema keywords an argument (by JSON Pointer) must meet."""

    pointer: str
    keywords: Mapping[str, Any]
    schema: CompiledSchema

    @classmethod
    def build(cls, key: str, keywords: Mapping[str, Any]) -> Constraint:
        return cls(
            pointer=key if key.startswith("/") else pointer([key]),
            keywords=keywords,
            schema=CompiledSchema(dict(keywords)),
        )


@dataclass(frozen=True, slots=True)
class GrantView:
    id: str
    tool: str
    source: str  # "agent" or "role"
    constraints: tuple[Constraint, ...] = ()
    rate_limit_per_minute: int | None = None
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None

    def is_current(self, at: dt.datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at < self.valid_until
        )


@dataclass(frozen=True, slots=True)
class ContractView:
    id: str
    tool: str
    version: int
    status: str  # draft, active, deprecated
    input: CompiledSchema
    output: CompiledSchema
    # Where the schemas mark values `x-warden-sensitive` (paths of names, "*" for array items):
    # stored only as salted digests. Not used by the engine's decision.
    sensitive_input: tuple[tuple[str | int, ...], ...] = ()
    sensitive_output: tuple[tuple[str | int, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Limits:
    """Fleet-wide settings the engine applies."""

    loop_max_repeats: int = 5  # the same call more than this many times in the window is a loop
    loop_window_seconds: int = 60


@dataclass(frozen=True)
class Snapshot:
    """The whole policy at one version. Lookups are dictionaries; nothing is computed per call."""

    version: int
    agents: Mapping[str, AgentView]  # by id
    agent_ids_by_slug: Mapping[str, str]
    # Per agent id and tool, the grants that could apply, most specific first (own, then role's).
    grants: Mapping[str, Mapping[str, tuple[GrantView, ...]]]
    tools: Mapping[str, ToolView]
    contracts: Mapping[str, Mapping[int, ContractView]]  # by tool, then version
    default_contracts: Mapping[str, int]  # tool -> highest active version
    rules: tuple[CompiledRule, ...]  # by priority (lowest number first), then id
    limits: Limits = Limits()

    @classmethod
    def build(
        cls,
        *,
        version: int,
        agents: list[AgentView],
        grants: list[tuple[str, GrantView]],
        tools: list[ToolView],
        contracts: list[ContractView],
        rules: list[CompiledRule],
        limits: Limits | None = None,
    ) -> Snapshot:
        """Index the parts; `grants` pairs each grant with the agent id it applies to."""
        by_agent: dict[str, dict[str, list[GrantView]]] = {}
        for agent_id, grant in grants:
            by_agent.setdefault(agent_id, {}).setdefault(grant.tool, []).append(grant)
        contracts_by_tool: dict[str, dict[int, ContractView]] = {}
        for contract in contracts:
            contracts_by_tool.setdefault(contract.tool, {})[contract.version] = contract
        default_contracts = {
            tool: max(version for version, c in versions.items() if c.status == ACTIVE)
            for tool, versions in contracts_by_tool.items()
            if any(c.status == ACTIVE for c in versions.values())
        }
        return cls(
            version=version,
            agents=MappingProxyType({agent.id: agent for agent in agents}),
            agent_ids_by_slug=MappingProxyType({agent.slug: agent.id for agent in agents}),
            grants=MappingProxyType(
                {
                    agent_id: MappingProxyType(
                        {
                            tool: tuple(sorted(items, key=lambda grant: grant.source != "agent"))
                            for tool, items in per_tool.items()
                        }
                    )
                    for agent_id, per_tool in by_agent.items()
                }
            ),
            tools=MappingProxyType({tool.name: tool for tool in tools}),
            contracts=MappingProxyType({tool: MappingProxyType(v) for tool, v in contracts_by_tool.items()}),
            default_contracts=MappingProxyType(default_contracts),
            rules=tuple(sorted(rules, key=lambda rule: (rule.priority, rule.id))),
            limits=limits or Limits(),
        )

    @classmethod
    def empty(cls) -> Snapshot:
        return cls.build(version=0, agents=[], grants=[], tools=[], contracts=[], rules=[])

    @property
    def is_empty(self) -> bool:
        return not self.agents or not self.tools

    def agent(self, key: str) -> AgentView | None:
        """An agent by id or slug."""
        found = self.agents.get(key)
        if found is None and key in self.agent_ids_by_slug:
            found = self.agents[self.agent_ids_by_slug[key]]
        return found

    def current_grant(self, agent_id: str, tool: str, at: dt.datetime) -> GrantView | None:
        """The most specific grant of `tool` to the agent that is valid at `at`."""
        for grant in self.grants.get(agent_id, {}).get(tool, ()):
            if grant.is_current(at):
                return grant
        return None
