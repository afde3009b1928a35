"""Statuses and enumerations of the registry, with the agent lifecycle state machine."""

from __future__ import annotations

from django.db import models


class AgentStatus(models.TextChoices):
    """Where an agent is in its lifecycle. Only `active` agents may act."""

    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    QUARANTINED = "quarantined", "Quarantined"
    RETIRED = "retired", "Retired"


# The legal moves. Retired is final; quarantine is only left by a human with a reason.
AGENT_TRANSITIONS: dict[str, frozenset[str]] = {
    AgentStatus.DRAFT: frozenset({AgentStatus.ACTIVE, AgentStatus.RETIRED}),
    AgentStatus.ACTIVE: frozenset({AgentStatus.SUSPENDED, AgentStatus.QUARANTINED, AgentStatus.RETIRED}),
    AgentStatus.SUSPENDED: frozenset({AgentStatus.ACTIVE, AgentStatus.QUARANTINED, AgentStatus.RETIRED}),
    AgentStatus.QUARANTINED: frozenset({AgentStatus.ACTIVE, AgentStatus.SUSPENDED, AgentStatus.RETIRED}),
    AgentStatus.RETIRED: frozenset(),
}

# Moves that must say why: entering or leaving quarantine.
TRANSITIONS_NEEDING_REASON = frozenset(
    {(source, AgentStatus.QUARANTINED.value) for source in AgentStatus.values}
    | {(AgentStatus.QUARANTINED.value, target) for target in AgentStatus.values}
)


class RiskTier(models.TextChoices):
    """How much harm the agent could do; drives review and approval strictness."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    CRITICAL = "critical", "Critical"


class ModelKind(models.TextChoices):
    """Fleets are hybrid: small specialised models and large general ones."""

    SLM = "slm", "Small language model"
    LLM = "llm", "Large language model"


class SideEffect(models.TextChoices):
    """What running a tool does to the world, from harmless to irreversible."""

    READ = "read", "Read"
    WRITE = "write", "Write"
    EXTERNAL = "external", "External (leaves the organisation)"
    FINANCIAL = "financial", "Financial"
    DESTRUCTIVE = "destructive", "Destructive"


class ChangeAction(models.TextChoices):
    """What a change record describes."""

    AGENT_CREATED = "agent.created", "Agent created"
    AGENT_UPDATED = "agent.updated", "Agent updated"
    AGENT_STATUS_CHANGED = "agent.status_changed", "Agent status changed"
    ROLE_CREATED = "role.created", "Role created"
    ROLE_UPDATED = "role.updated", "Role updated"
    ROLE_DELETED = "role.deleted", "Role deleted"
    GRANT_ADDED = "grant.added", "Grant added"
    GRANT_CHANGED = "grant.changed", "Grant changed"
    GRANT_REMOVED = "grant.removed", "Grant removed"
    CREDENTIAL_ISSUED = "credential.issued", "Key issued"
    CREDENTIAL_ROTATED = "credential.rotated", "Key rotated"
    CREDENTIAL_REVOKED = "credential.revoked", "Key revoked"
    TOOL_CREATED = "tool.created", "Tool registered"
    TOOL_UPDATED = "tool.updated", "Tool updated"
    CONTRACT_CREATED = "contract.created", "Contract version created"
    CONTRACT_UPDATED = "contract.updated", "Contract version updated"
    CONTRACT_STATUS_CHANGED = "contract.status_changed", "Contract status changed"
    RULE_CREATED = "rule.created", "Rule created"
    RULE_CHANGED = "rule.changed", "Rule changed"
    RULE_DELETED = "rule.deleted", "Rule deleted"
    UNATTRIBUTED_SAVE = "model.saved_outside_service", "Saved outside a service"


class ActorKind(models.TextChoices):
    """Who caused a change."""

    USER = "user", "User"
    AGENT = "agent", "Agent"
    SYSTEM = "system", "System"
