"""The per-process policy snapshot: built from the database, rebuilt when the version moves.

Every change to agents, grants, credentials, tools, contracts or rules bumps the `policy`
revision in its own transaction (`core.revisions`). A process compares the committed revision
with its snapshot's at most every `POLICY_RECHECK_SECONDS` (one indexed read), so every worker
serves the new policy within that time; a change committed in this process invalidates at
once (`invalidate`, an on-commit listener). Building is lock-protected: one thread builds
while the others keep serving the previous snapshot.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from django.db.models import Q
from django.utils import timezone

from audit.sensitive import sensitive_paths
from core import revisions
from core.conf import warden_settings
from policy.choices import ContractStatus
from policy.engine import AgentView, Constraint, ContractView, GrantView, Limits, Snapshot, ToolView
from policy.engine.rules import CompiledRule
from policy.engine.validation import CompiledSchema
from policy.models import ContractVersion, Rule
from registry.models import Agent, Credential, Grant, Tool


@dataclass(frozen=True, slots=True)
class KeyView:
    """What authentication needs of a credential, without another query."""

    prefix: str
    secret_hash: str
    agent_id: str
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class PolicyState:
    """A snapshot plus the live agent keys, at one policy version."""

    snapshot: Snapshot
    keys: MappingProxyType[str, KeyView]
    built_at: float

    @property
    def version(self) -> int:
        return self.snapshot.version


logger = logging.getLogger(__name__)
_lock = threading.Lock()
_state: PolicyState | None = None
_checked_at = 0.0
_stale = True


def invalidate() -> None:
    """Make the next `current()` compare versions now (after a change committed here)."""
    global _stale
    _stale = True


def reset() -> None:
    """Forget the cached state (tests: a rolled-back test can leave the revision number where it was)."""
    global _state, _stale
    with _lock:
        _state, _stale = None, True


def current() -> PolicyState:
    """The policy state to decide with: cached, rechecked at most every POLICY_RECHECK_SECONDS."""
    global _state, _checked_at, _stale
    state, now = _state, time.monotonic()
    if state is not None and not _stale and now - _checked_at < warden_settings.POLICY_RECHECK_SECONDS:
        return state
    version = revisions.current(revisions.POLICY)
    if state is not None and state.version == version:
        _checked_at, _stale = now, False
        return state
    with _lock:
        if _state is None or _state.version != version:
            _state = build(version)
        _checked_at, _stale = time.monotonic(), False
        return _state


def build(version: int | None = None) -> PolicyState:
    """Read the whole policy from the database (six queries) and compile it."""
    if version is None:
        version = revisions.current(revisions.POLICY)
    agents = list(Agent.objects.select_related("role"))
    agent_views = [
        AgentView(
            id=str(agent.pk),
            slug=agent.slug,
            name=agent.name,
            status=agent.status,
            role=agent.role.slug if agent.role else None,
            risk_tier=agent.risk_tier,
            team=agent.team,
            max_delegation_depth=int(agent.scope.get("max_delegation_depth", 0)),
            max_calls_per_hour=agent.max_calls_per_hour,
            max_cost_per_day=agent.max_cost_per_day,
            scope=MappingProxyType(dict(agent.scope)),
            supervisor_id=str(agent.supervisor_id) if agent.supervisor_id else None,
        )
        for agent in agents
    ]
    members_of_role: dict[Any, list[str]] = {}
    for agent in agents:
        if agent.role_id is not None:
            members_of_role.setdefault(agent.role_id, []).append(str(agent.pk))
    now = timezone.now()
    grants: list[tuple[str, GrantView]] = []
    current_grants = Grant.objects.filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
    for grant in current_grants:
        try:
            constraints = tuple(Constraint.build(key, value) for key, value in sorted(grant.constraints.items()))
        except (ValueError, TypeError):
            # Saved before the registry checked patterns with both engines: this grant gives no
            # authority (its calls get no_grant) rather than taking the whole policy down.
            logger.error("Grant %s has constraints the engine cannot compile; it is ignored.", grant.pk)
            continue
        view = GrantView(
            id=str(grant.pk),
            tool=grant.tool_id,
            source="agent" if grant.agent_id else "role",
            constraints=constraints,
            rate_limit_per_minute=grant.rate_limit_per_minute,
            valid_from=grant.valid_from,
            valid_until=grant.valid_until,
        )
        holders = [str(grant.agent_id)] if grant.agent_id else members_of_role.get(grant.role_id, [])
        grants.extend((holder, view) for holder in holders)
    tools = [
        ToolView(tool.name, tool.side_effect, tool.default_risk, precheck=tool.guardian_precheck)
        for tool in Tool.objects.all()
    ]
    contracts = [
        ContractView(
            id=str(contract.pk),
            tool=contract.tool_id,
            version=contract.version,
            status=contract.status,
            input=CompiledSchema(contract.input_schema),
            output=CompiledSchema(contract.output_schema),
            sensitive_input=sensitive_paths(contract.input_schema),
            sensitive_output=sensitive_paths(contract.output_schema),
        )
        for contract in ContractVersion.objects.filter(status__in=[ContractStatus.ACTIVE, ContractStatus.DEPRECATED])
    ]
    rules = [
        CompiledRule.build(
            id=str(rule.pk),
            name=rule.name,
            expression=rule.expression,
            effect=rule.effect,
            mode=rule.mode,
            scope_kind=rule.scope,
            scope_value=rule.scope_target,
            priority=rule.priority,
            message=rule.message,
        )
        for rule in Rule.objects.filter(enabled=True).select_related("scope_role")
    ]
    keys = {
        credential.prefix: KeyView(
            prefix=credential.prefix,
            secret_hash=credential.secret_hash,
            agent_id=str(credential.agent_id),
            expires_at=credential.expires_at,
        )
        for credential in Credential.objects.filter(revoked_at__isnull=True).filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now)
        )
    }
    snapshot = Snapshot.build(
        version=version,
        agents=agent_views,
        grants=grants,
        tools=tools,
        contracts=contracts,
        rules=rules,
        limits=Limits(
            loop_max_repeats=warden_settings.LOOP_MAX_REPEATS,
            loop_window_seconds=warden_settings.LOOP_WINDOW_SECONDS,
        ),
    )
    return PolicyState(snapshot=snapshot, keys=MappingProxyType(keys), built_at=time.time())
