"""Every write to the registry. Each service is atomic, validates with `full_clean()` and
records one `ChangeRecord` per change in the same transaction, with the actor.

Views, the admin, commands and tasks call these; nothing else saves registry models.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib.auth import get_user_model
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

import audit.services as audit
from core import revisions
from core.actors import Actor
from core.conf import warden_settings
from core.errors import AuthenticationFailed, Conflict, IllegalTransition, InvalidInput
from registry.choices import (
    AGENT_TRANSITIONS,
    TRANSITIONS_NEEDING_REASON,
    AgentStatus,
    ChangeAction,
)
from registry.keys import generate_key, key_matches, parse_prefix
from registry.models import Agent, ChangeRecord, Credential, Grant, Role, Tool, in_service

# Fields never copied into change records.
_SECRET_FIELDS = frozenset({"secret_hash"})
# How often a key's last use is written back (a write per request would cost the hot path).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


@contextmanager
def _writing() -> Iterator[None]:
    """Mark the enclosed saves as made by a service (see RecordedModel)."""
    token = in_service.set(True)
    try:
        yield
    finally:
        in_service.reset(token)


def snapshot(instance: models.Model) -> dict[str, Any]:
    """A JSON-safe copy of a model's concrete fields (foreign keys as ids), secrets left out."""
    data = {
        field.attname: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.attname not in _SECRET_FIELDS
    }
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def record_change(
    *,
    actor: Actor,
    action: str,
    instance: models.Model,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str = "",
) -> ChangeRecord:
    """Record one change (call inside the transaction that makes it) and move the policy version.

    Every registry change and every policy change (tools, contracts, rules) comes through here,
    so the change history is complete and cached policy snapshots learn they are stale.
    """
    revisions.bump(revisions.POLICY)
    changed = sorted(
        key
        for key in set(before or {}) | set(after or {})
        if (before or {}).get(key) != (after or {}).get(key) and key != "updated_at"
    )
    agent_id = role_id = None
    if isinstance(instance, Agent):
        agent_id = instance.pk
    elif isinstance(instance, Role):
        role_id = instance.pk
    else:
        agent_id = getattr(instance, "agent_id", None)
        role_id = getattr(instance, "role_id", None)
    change = ChangeRecord.objects.create(
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
        action=action,
        subject_type=instance._meta.model_name or "",
        subject_id=str(instance.pk),
        agent_id=agent_id,
        role_id=role_id,
        before=before,
        after=after,
        changed_fields=changed,
        reason=reason,
    )
    audit.append(
        actor=actor,
        action=action,
        subject_type=change.subject_type,
        subject_id=change.subject_id,
        agent_id=str(agent_id) if agent_id else None,
        tool=_tool_of(instance),
        at=change.at,
        payload={
            "change": change.pk,
            "before": before,
            "after": after,
            "changed_fields": changed,
            "reason": reason,
        },
    )
    return change


def _tool_of(instance: models.Model) -> str | None:
    """The tool a change concerns, for filtering the audit trail (a tool, a grant, a contract...)."""
    if isinstance(instance, Tool):
        return instance.name
    return getattr(instance, "tool_id", None)


def save_recorded(instance: models.Model) -> None:
    """Validate and save a recorded model inside a service (the caller records the change)."""
    instance.full_clean()
    with _writing():
        instance.save()


def delete_recorded(instance: models.Model) -> None:
    """Delete a recorded model inside a service (the caller records the change first)."""
    with _writing():
        instance.delete()


def user_of(actor: Actor) -> Any:
    """The Django user behind a user actor (for `granted_by` / `created_by`), else None."""
    if actor.kind != "user":
        return None
    return get_user_model().objects.filter(pk=actor.id).first()


def _apply(instance: models.Model, changes: dict[str, Any], editable: frozenset[str]) -> None:
    unknown = sorted(set(changes) - editable)
    if unknown:
        raise InvalidInput(
            "These fields cannot be changed here.",
            detail={name: ["This field cannot be changed here."] for name in unknown},
        )
    for name, value in changes.items():
        setattr(instance, name, value)


_M = TypeVar("_M", bound=models.Model)


def update_recorded(
    *,
    actor: Actor,
    instance: _M,
    changes: dict[str, Any],
    editable: frozenset[str],
    action: str,
    check: Callable[[_M], None] | None = None,
    reason: str = "",
) -> _M:
    """Lock the row, apply `changes`, validate, save, and record the change if anything moved.

    `check` sees the locked, changed object before it is saved and may refuse the change.
    """
    current = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
    before = snapshot(current)
    _apply(current, changes, editable)
    if check is not None:
        check(current)
    save_recorded(current)
    after = snapshot(current)
    # `updated_at` moves on every save; only a change to another field is a change worth recording.
    if {**after, "updated_at": None} != {**before, "updated_at": None}:
        record_change(actor=actor, action=action, instance=current, before=before, after=after, reason=reason)
    return current


@transaction.atomic
def record_unattributed_save(*, instance: models.Model, save: Callable[[], None]) -> None:
    """Save a registry object written outside the services, and record that it happened.

    Keeps the promise that every change leaves a trace, even one made with `.save()` from a
    shell; the actor is the system, named `unattributed`, with the operating-system user.
    """
    before = None
    if not instance._state.adding:
        current = type(instance)._default_manager.filter(pk=instance.pk).first()
        before = snapshot(current) if current is not None else None
    save()
    record_change(
        actor=Actor.system("unattributed"),
        action=ChangeAction.UNATTRIBUTED_SAVE,
        instance=instance,
        before=before,
        after=snapshot(instance),
    )


# Tools -------------------------------------------------------------------------------------

TOOL_EDITABLE = frozenset({"description", "side_effect", "default_risk", "enforce_hardening", "guardian_precheck"})


@transaction.atomic
def tool_create(*, actor: Actor, name: str, **fields: Any) -> Tool:
    """Register a tool so that grants, contracts and rules can name it."""
    tool = Tool(name=name)
    _apply(tool, fields, TOOL_EDITABLE)
    save_recorded(tool)
    record_change(actor=actor, action=ChangeAction.TOOL_CREATED, instance=tool, before=None, after=snapshot(tool))
    return tool


@transaction.atomic
def tool_update(*, actor: Actor, tool: Tool, **changes: Any) -> Tool:
    """Change a tool's description, side-effect class, default risk or hardening enforcement.

    The name is fixed: grants, contracts and recorded tool calls refer to it.
    """
    return update_recorded(
        actor=actor, instance=tool, changes=changes, editable=TOOL_EDITABLE, action=ChangeAction.TOOL_UPDATED
    )


def tool_named(tool: Tool | str, *, field: str = "tool") -> Tool:
    """A registered tool by name (a Tool passes through); an unregistered name is refused with what to do."""
    if isinstance(tool, Tool):
        return tool
    found = Tool.objects.filter(name=tool).first()
    if found is None:
        raise InvalidInput(
            f"Unknown tool {tool!r}: register it under Tools first.",
            detail={field: [f"No registered tool is named {tool!r}."]},
        )
    return found


def resolve_tool(fields: dict[str, Any], field: str = "tool") -> None:
    """Let callers name a tool in `fields[field]` by its name (see `tool_named`)."""
    if isinstance(fields.get(field), str):
        fields[field] = tool_named(fields[field], field=field)


# Roles -------------------------------------------------------------------------------------

ROLE_EDITABLE = frozenset({"slug", "name", "description"})


@transaction.atomic
def role_create(*, actor: Actor, slug: str, name: str, description: str = "") -> Role:
    """Create a role (an authority template); grants are added with `grant_create`."""
    role = Role(slug=slug, name=name, description=description)
    save_recorded(role)
    record_change(actor=actor, action=ChangeAction.ROLE_CREATED, instance=role, before=None, after=snapshot(role))
    return role


@transaction.atomic
def role_update(*, actor: Actor, role: Role, **changes: Any) -> Role:
    """Change a role's name, slug or description."""
    return update_recorded(
        actor=actor, instance=role, changes=changes, editable=ROLE_EDITABLE, action=ChangeAction.ROLE_UPDATED
    )


@transaction.atomic
def role_delete(*, actor: Actor, role: Role) -> None:
    """Delete a role no agent uses, with its grants (each removal recorded)."""
    role = Role.objects.select_for_update().get(pk=role.pk)
    members = list(role.agents.values_list("slug", flat=True)[:20])
    if members:
        raise Conflict(
            "This role is still assigned; move its agents to another role first.",
            detail={"agents": members},
        )
    for grant in role.grants.all():
        grant_delete(actor=actor, grant=grant, reason=f"Role {role.slug} deleted.")
    before = snapshot(role)
    record_change(actor=actor, action=ChangeAction.ROLE_DELETED, instance=role, before=before, after=None)
    delete_recorded(role)


# Agents ------------------------------------------------------------------------------------

AGENT_EDITABLE = frozenset(
    {
        "slug",
        "name",
        "description",
        "version",
        "endpoint_url",
        "owner",
        "team",
        "role",
        "risk_tier",
        "scope",
        "model_name",
        "model_kind",
        "model_version",
        "supervisor",
        "max_calls_per_hour",
        "max_cost_per_day",
    }
)


@transaction.atomic
def agent_create(*, actor: Actor, **fields: Any) -> Agent:
    """Register an agent. It starts as a draft: it cannot act until activated."""
    if "status" in fields and fields["status"] not in (None, AgentStatus.DRAFT):
        raise InvalidInput(
            "New agents start as drafts; activate them afterwards.",
            detail={"status": ["New agents start as 'draft'."]},
        )
    fields.pop("status", None)
    agent = Agent()
    _apply(agent, fields, AGENT_EDITABLE)
    save_recorded(agent)
    record_change(actor=actor, action=ChangeAction.AGENT_CREATED, instance=agent, before=None, after=snapshot(agent))
    return agent


@transaction.atomic
def agent_update(*, actor: Actor, agent: Agent, **changes: Any) -> Agent:
    """Change an agent's profile. Status moves go through `agent_transition` instead."""
    if "status" in changes:
        raise InvalidInput(
            "Change the status with a transition (activate, suspend, quarantine, retire).",
            detail={"status": ["Use the status transition endpoint."]},
        )
    return update_recorded(
        actor=actor,
        instance=agent,
        changes=changes,
        editable=AGENT_EDITABLE,
        action=ChangeAction.AGENT_UPDATED,
        check=_check_not_retired,
    )


def _check_not_retired(agent: Agent) -> None:
    if agent.status == AgentStatus.RETIRED:
        raise Conflict("Retired agents are kept for the record and cannot be changed.")


def allowed_transitions(agent: Agent) -> list[str]:
    """The statuses the agent may move to from its current status."""
    return sorted(AGENT_TRANSITIONS[agent.status])


@transaction.atomic
def agent_transition(*, actor: Actor, agent: Agent, to: str, reason: str = "") -> Agent:
    """Move an agent through its lifecycle, refusing illegal moves (409).

    Entering or leaving quarantine needs a reason. Retiring an agent revokes its keys.
    """
    if to not in AgentStatus.values:
        raise InvalidInput(
            f"Unknown status {to!r}.", detail={"status": [f"Choose one of: {', '.join(AgentStatus.values)}."]}
        )
    current = Agent.objects.select_for_update().get(pk=agent.pk)
    if to not in AGENT_TRANSITIONS[current.status]:
        raise IllegalTransition(
            f"An agent cannot go from {current.status} to {to}.",
            detail={"status": current.status, "allowed": allowed_transitions(current)},
        )
    reason = reason.strip()
    if (current.status, to) in TRANSITIONS_NEEDING_REASON and not reason:
        raise InvalidInput(
            "Say why: entering or leaving quarantine needs a reason.",
            detail={"reason": ["A reason is required for this status change."]},
        )
    before = snapshot(current)
    current.status = to
    current.status_changed_at = timezone.now()
    # The change is recorded before the save, so post_save receivers (approvals, guardians) can read who and why.
    record_change(
        actor=actor,
        action=ChangeAction.AGENT_STATUS_CHANGED,
        instance=current,
        before=before,
        after=snapshot(current),
        reason=reason,
    )
    save_recorded(current)
    if to == AgentStatus.RETIRED:
        for credential in current.credentials.filter(revoked_at__isnull=True):
            credential_revoke(actor=actor, credential=credential, reason="Agent retired.")
    return current


# Grants ------------------------------------------------------------------------------------

GRANT_EDITABLE = frozenset(
    {"agent", "role", "tool", "constraints", "rate_limit_per_minute", "valid_from", "valid_until", "reason"}
)


def _check_grant_holder(grant: Grant) -> None:
    if grant.agent is not None and grant.agent.status == AgentStatus.RETIRED:
        raise Conflict("Retired agents cannot receive authority.")


@transaction.atomic
def grant_create(*, actor: Actor, reason: str, **fields: Any) -> Grant:
    """Give an agent or a role authority over one tool, recording who granted it and why."""
    resolve_tool(fields)
    grant = Grant(reason=reason.strip(), granted_by=user_of(actor))
    _apply(grant, fields, GRANT_EDITABLE)
    _check_grant_holder(grant)
    save_recorded(grant)
    record_change(
        actor=actor,
        action=ChangeAction.GRANT_ADDED,
        instance=grant,
        before=None,
        after=snapshot(grant),
        reason=grant.reason,
    )
    return grant


@transaction.atomic
def grant_update(*, actor: Actor, grant: Grant, **changes: Any) -> Grant:
    """Change a grant's constraints, limits, window or reason."""
    resolve_tool(changes)
    return update_recorded(
        actor=actor,
        instance=grant,
        changes=changes,
        editable=GRANT_EDITABLE,
        action=ChangeAction.GRANT_CHANGED,
        check=_check_grant_holder,
        reason=str(changes.get("reason", "")),
    )


@transaction.atomic
def grant_delete(*, actor: Actor, grant: Grant, reason: str = "") -> None:
    """Withdraw a grant."""
    current = Grant.objects.select_for_update().get(pk=grant.pk)
    record_change(
        actor=actor,
        action=ChangeAction.GRANT_REMOVED,
        instance=current,
        before=snapshot(current),
        after=None,
        reason=reason,
    )
    delete_recorded(current)


# Credentials -------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedCredential:
    """A newly issued credential with its plaintext key, which is never available again."""

    credential: Credential
    key: str


def _default_expiry() -> dt.datetime | None:
    days = warden_settings.CREDENTIAL_DEFAULT_TTL_DAYS
    return timezone.now() + dt.timedelta(days=days) if days else None


def _new_credential(
    *, actor: Actor, agent: Agent, name: str, expires_at: dt.datetime | None, replaces: Credential | None
) -> IssuedCredential:
    if agent.status == AgentStatus.RETIRED:
        raise Conflict("Retired agents cannot be given keys.")
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("The expiry must be in the future.", detail={"expires_at": ["Must be in the future."]})
    generated = generate_key()
    credential = Credential(
        agent=agent,
        name=name.strip(),
        prefix=generated.prefix,
        secret_hash=generated.secret_hash,
        created_by=user_of(actor),
        expires_at=expires_at,
        replaces=replaces,
    )
    save_recorded(credential)
    return IssuedCredential(credential=credential, key=generated.key)


@transaction.atomic
def credential_issue(
    *, actor: Actor, agent: Agent, name: str = "", expires_at: dt.datetime | None = None
) -> IssuedCredential:
    """Issue a new API key for an agent. The plaintext is returned once and never stored."""
    issued = _new_credential(
        actor=actor, agent=agent, name=name, expires_at=expires_at or _default_expiry(), replaces=None
    )
    record_change(
        actor=actor,
        action=ChangeAction.CREDENTIAL_ISSUED,
        instance=issued.credential,
        before=None,
        after=snapshot(issued.credential),
    )
    return issued


@transaction.atomic
def credential_rotate(
    *, actor: Actor, credential: Credential, grace: dt.timedelta = dt.timedelta(0)
) -> IssuedCredential:
    """Replace a key with a new one. The old key stops working now, or after `grace`."""
    current = Credential.objects.select_for_update().select_related("agent").get(pk=credential.pk)
    if current.state() != "active":
        raise Conflict(f"This key is {current.state()}; issue a new key instead of rotating it.")
    if hasattr(current, "replaced_by"):
        raise Conflict("This key was already rotated.")
    issued = _new_credential(
        actor=actor,
        agent=current.agent,
        name=current.name,
        expires_at=_default_expiry(),
        replaces=current,
    )
    before = snapshot(current)
    if grace > dt.timedelta(0):
        current.expires_at = min(filter(None, [current.expires_at, timezone.now() + grace]))
    else:
        current.revoked_at = timezone.now()
        current.revoked_reason = "Rotated."
    save_recorded(current)
    record_change(
        actor=actor,
        action=ChangeAction.CREDENTIAL_ROTATED,
        instance=current,
        before=before,
        after=snapshot(current),
        reason=f"Replaced by key {issued.credential.prefix}.",
    )
    record_change(
        actor=actor,
        action=ChangeAction.CREDENTIAL_ISSUED,
        instance=issued.credential,
        before=None,
        after=snapshot(issued.credential),
        reason=f"Rotation of key {current.prefix}.",
    )
    return issued


@transaction.atomic
def credential_revoke(*, actor: Actor, credential: Credential, reason: str = "") -> Credential:
    """Revoke a key at once. Revoking an already revoked key changes nothing."""
    current = Credential.objects.select_for_update().get(pk=credential.pk)
    if current.revoked_at is not None:
        return current
    before = snapshot(current)
    current.revoked_at = timezone.now()
    current.revoked_reason = reason.strip()
    save_recorded(current)
    record_change(
        actor=actor,
        action=ChangeAction.CREDENTIAL_REVOKED,
        instance=current,
        before=before,
        after=snapshot(current),
        reason=current.revoked_reason,
    )
    return current


def credential_authenticate(key: str) -> Credential:
    """The active credential for a presented key, or AuthenticationFailed saying why not.

    One indexed lookup by prefix, then a constant-time hash comparison.
    """
    prefix = parse_prefix(key)
    if prefix is None:
        raise AuthenticationFailed("Malformed key: expected wdn_<prefix>_<secret>.", detail={"reason": "malformed"})
    credential = Credential.objects.select_related("agent").filter(prefix=prefix).first()
    if credential is None or not key_matches(key, credential.secret_hash):
        raise AuthenticationFailed("Unknown key.", detail={"reason": "unknown"})
    state = credential.state()
    if state != "active":
        raise AuthenticationFailed(
            f"This key is {state}; ask the agent's owner for a new one.", detail={"reason": state}
        )
    now = timezone.now()
    if credential.last_used_at is None or now - credential.last_used_at > LAST_USED_RESOLUTION:
        # A usage timestamp, not a governed change: a plain UPDATE, no change record.
        Credential.objects.filter(pk=credential.pk).update(last_used_at=now)
        credential.last_used_at = now
    return credential
