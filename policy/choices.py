"""Enumerations of the policy app, shared by models, services, the API and the admin."""

from __future__ import annotations

from django.db import models


class ContractStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    DEPRECATED = "deprecated", "Deprecated"


# Contract lifecycle: a draft is edited then activated; an active version can be deprecated
# (and brought back); nothing returns to draft.
CONTRACT_TRANSITIONS: dict[str, frozenset[str]] = {
    ContractStatus.DRAFT: frozenset({ContractStatus.ACTIVE}),
    ContractStatus.ACTIVE: frozenset({ContractStatus.DEPRECATED}),
    ContractStatus.DEPRECATED: frozenset({ContractStatus.ACTIVE}),
}


class RuleEffect(models.TextChoices):
    ALLOW = "allow", "Allow (stop evaluating lower-priority rules)"
    DENY = "deny", "Deny"
    ESCALATE = "escalate", "Escalate to a human"


class RuleMode(models.TextChoices):
    ENFORCE = "enforce", "Enforce"
    SHADOW = "shadow", "Shadow (record only)"


class RuleScope(models.TextChoices):
    GLOBAL = "global", "Every call"
    ROLE = "role", "Agents with a role"
    AGENT = "agent", "One agent"
    TOOL = "tool", "One tool"


class DecisionOutcome(models.TextChoices):
    ALLOW = "allow", "Allow"
    ESCALATE = "escalate", "Escalate"
    DENY = "deny", "Deny"


class ResultStatus(models.TextChoices):
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ExpiryEffect(models.TextChoices):
    """What an escalated call becomes when nobody decides before its approval is due."""

    DENY = "deny", "Deny (the safe default)"
    ALLOW = "allow", "Allow (silence is consent)"
