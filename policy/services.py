"""Every change to contracts and rules: validated, recorded, and moving the policy version.

Like `registry.services`, each function is one transaction that writes its change record
(`registry.services.record_change`), so the admin, the API and commands behave the same.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.actors import Actor
from core.errors import Conflict, IllegalTransition, InvalidInput
from policy.choices import CONTRACT_TRANSITIONS, ContractStatus
from policy.hardening import hardening_report
from policy.models import ContractVersion, Rule
from registry import services as registry_services
from registry.choices import ChangeAction
from registry.models import Tool

CONTRACT_EDITABLE = frozenset({"input_schema", "output_schema", "notes"})
# In the order forms show them.
RULE_FIELDS = (
    "name",
    "description",
    "expression",
    "effect",
    "mode",
    "scope",
    "scope_role",
    "scope_agent",
    "scope_tool",
    "priority",
    "message",
    "enabled",
    "approval_timeout_seconds",
    "on_expiry",
    "required_approvals",
)
RULE_EDITABLE = frozenset(RULE_FIELDS)


def _record(actor: Actor, action: str, instance: Any, before: Any, reason: str = "") -> None:
    registry_services.record_change(
        actor=actor,
        action=action,
        instance=instance,
        before=before,
        after=registry_services.snapshot(instance) if instance.pk else None,
        reason=reason,
    )


# Contracts ---------------------------------------------------------------------------------


@transaction.atomic
def contract_create(
    *,
    actor: Actor,
    tool: Tool | str,
    input_schema: Any,
    output_schema: Any = None,
    notes: str = "",
    activate: bool = False,
) -> ContractVersion:
    """Add the next version of a tool's contract (a draft unless `activate`)."""
    locked = Tool.objects.select_for_update().get(
        pk=registry_services.tool_named(tool).pk
    )  # serialises version numbers
    latest = ContractVersion.objects.filter(tool=locked).aggregate(latest=Max("version"))["latest"] or 0
    contract = ContractVersion(
        tool=locked,
        version=latest + 1,
        input_schema=input_schema,
        output_schema={} if output_schema is None else output_schema,
        notes=notes,
        created_by=registry_services.user_of(actor),
    )
    contract.hardening_report = _report(contract)
    registry_services.save_recorded(contract)
    _record(actor, ChangeAction.CONTRACT_CREATED, contract, None)
    if activate:
        contract = contract_set_status(actor=actor, contract=contract, to=ContractStatus.ACTIVE)
    return contract


def _report(contract: ContractVersion) -> list[dict[str, str]]:
    return [finding.as_dict() for finding in hardening_report(contract.input_schema)]


@transaction.atomic
def contract_update(*, actor: Actor, contract: ContractVersion, **changes: Any) -> ContractVersion:
    """Edit a draft. Active and deprecated versions are immutable: create a new version instead."""

    def only_drafts(current: ContractVersion) -> None:
        if current.status != ContractStatus.DRAFT:
            raise Conflict(
                f"{current} is {current.status} and can no longer change; create version "
                f"{current.version + 1} instead.",
                detail={"status": current.status},
            )
        current.hardening_report = _report(current)

    return registry_services.update_recorded(
        actor=actor,
        instance=contract,
        changes=changes,
        editable=CONTRACT_EDITABLE,
        action=ChangeAction.CONTRACT_UPDATED,
        check=only_drafts,
    )


@transaction.atomic
def contract_set_status(*, actor: Actor, contract: ContractVersion, to: str, reason: str = "") -> ContractVersion:
    """Activate, deprecate or re-activate a version; activation honours the tool's hardening enforcement."""
    current = ContractVersion.objects.select_for_update().select_related("tool").get(pk=contract.pk)
    if to not in CONTRACT_TRANSITIONS.get(current.status, frozenset()):
        raise IllegalTransition(
            f"A {current.status} contract cannot become {to}.",
            detail={"status": current.status, "allowed": sorted(CONTRACT_TRANSITIONS.get(current.status, ()))},
        )
    if to == ContractStatus.ACTIVE and current.tool.enforce_hardening and current.hardening_report:
        raise Conflict(
            f"{current.tool_id} enforces hardened schemas and this version's input schema has "
            f"{len(current.hardening_report)} finding(s); fix them in a new version.",
            detail={"hardening_report": current.hardening_report},
        )
    before = registry_services.snapshot(current)
    current.status = to
    if to == ContractStatus.ACTIVE and current.activated_at is None:
        current.activated_at = timezone.now()
    registry_services.save_recorded(current)
    _record(actor, ChangeAction.CONTRACT_STATUS_CHANGED, current, before, reason)
    return current


# Rules -------------------------------------------------------------------------------------


@transaction.atomic
def rule_create(*, actor: Actor, **fields: Any) -> Rule:
    """Add a rule; its expression is compiled now and refused with its position if CEL cannot parse it."""
    registry_services.resolve_tool(fields, "scope_tool")
    rule = Rule()
    unknown = sorted(set(fields) - RULE_EDITABLE)
    if unknown:
        raise InvalidInput("Unknown fields.", detail={name: ["Unknown field."] for name in unknown})
    for name, value in fields.items():
        setattr(rule, name, value)
    registry_services.save_recorded(rule)
    _record(actor, ChangeAction.RULE_CREATED, rule, None)
    return rule


@transaction.atomic
def rule_update(*, actor: Actor, rule: Rule, reason: str = "", **changes: Any) -> Rule:
    """Change a rule (its expression is compiled again)."""
    registry_services.resolve_tool(changes, "scope_tool")
    return registry_services.update_recorded(
        actor=actor,
        instance=rule,
        changes=changes,
        editable=RULE_EDITABLE,
        action=ChangeAction.RULE_CHANGED,
        reason=reason,
    )


@transaction.atomic
def rule_delete(*, actor: Actor, rule: Rule, reason: str = "") -> None:
    """Remove a rule (its history stays in the change records)."""
    current = Rule.objects.select_for_update().get(pk=rule.pk)
    registry_services.record_change(
        actor=actor,
        action=ChangeAction.RULE_DELETED,
        instance=current,
        before=registry_services.snapshot(current),
        after=None,
        reason=reason,
    )
    registry_services.delete_recorded(current)
