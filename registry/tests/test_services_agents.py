"""Agent services: creation, profile changes, the lifecycle state machine, and their records."""

from __future__ import annotations

import itertools

import pytest
from django.core.exceptions import ValidationError

from core.errors import Conflict, IllegalTransition, InvalidInput
from core.testing import assert_change_record, change_records
from registry import services
from registry.choices import AGENT_TRANSITIONS, AgentStatus, ChangeAction, ModelKind, RiskTier
from registry.models import Agent, ChangeRecord, Credential, Role
from registry.tests.factories import AgentFactory, RoleFactory

pytestmark = pytest.mark.django_db

VALID_SCOPE = {"data_domains": ["customers", "transactions"], "environments": ["staging"], "max_delegation_depth": 2}


def _create(actor, owner, **fields):
    return services.agent_create(
        actor=actor, **{"slug": "triage", "name": "Triage", "owner": owner, "model_name": "phi-4", **fields}
    )


# Creation ----------------------------------------------------------------------------------


def test_create_starts_as_draft_and_records_one_change(actor, owner):
    role = RoleFactory()
    before = ChangeRecord.objects.count()

    agent = _create(actor, owner, role=role, scope=VALID_SCOPE, risk_tier=RiskTier.HIGH, model_kind=ModelKind.SLM)

    agent.refresh_from_db()
    assert agent.status == AgentStatus.DRAFT
    assert (agent.role, agent.scope, agent.risk_tier) == (role, VALID_SCOPE, RiskTier.HIGH)
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(agent, ChangeAction.AGENT_CREATED, actor=actor)
    assert record.before is None
    assert record.after["slug"] == "triage"
    assert record.after["owner_id"] == owner.pk
    assert record.after["role_id"] == str(role.pk)
    assert record.after["scope"] == VALID_SCOPE
    assert record.agent_id == agent.pk
    assert "slug" in record.changed_fields
    assert "updated_at" not in record.changed_fields


def test_new_agent_gets_the_empty_default_scope(actor, owner):
    agent = _create(actor, owner)
    assert agent.scope == {"data_domains": [], "environments": [], "max_delegation_depth": 0}


def test_create_refuses_a_non_draft_status(actor, owner):
    with pytest.raises(InvalidInput) as error:
        _create(actor, owner, status=AgentStatus.ACTIVE)
    assert "status" in error.value.detail
    assert not Agent.objects.exists()
    assert not ChangeRecord.objects.exists()


def test_create_accepts_an_explicit_draft_status(actor, owner):
    assert _create(actor, owner, status=AgentStatus.DRAFT).status == AgentStatus.DRAFT


def test_create_refuses_unknown_fields(actor, owner):
    with pytest.raises(InvalidInput) as error:
        _create(actor, owner, risk_teir="high", last_seen_at=None)
    assert set(error.value.detail) == {"risk_teir", "last_seen_at"}
    assert not Agent.objects.exists()


@pytest.mark.parametrize(
    ("scope", "fragment"),
    [
        ({"data_domains": [], "environments": []}, "'max_delegation_depth' is a required property"),
        ({**VALID_SCOPE, "tools": ["x"]}, "Additional properties are not allowed"),
        ({**VALID_SCOPE, "max_delegation_depth": 9}, "9 is greater than the maximum of 8"),
        ({**VALID_SCOPE, "max_delegation_depth": -1}, "less than the minimum of 0"),
        ({**VALID_SCOPE, "max_delegation_depth": "2"}, "is not of type 'integer'"),
        ({**VALID_SCOPE, "data_domains": ["Customers"]}, "does not match"),
        ({**VALID_SCOPE, "data_domains": ["a", "a"]}, "non-unique elements"),
        ({**VALID_SCOPE, "environments": "production"}, "is not of type 'array'"),
        (["customers"], "is not of type 'object'"),
        (None, "This field cannot be null."),
    ],
)
def test_create_refuses_a_scope_that_breaks_the_schema(actor, owner, scope, fragment):
    with pytest.raises(ValidationError) as error:
        _create(actor, owner, scope=scope)
    messages = error.value.message_dict
    assert list(messages) == ["scope"]
    assert any(fragment in message for message in messages["scope"]), messages
    assert not Agent.objects.exists()
    assert not ChangeRecord.objects.exists()


def test_create_refuses_a_duplicate_slug(actor, owner):
    _create(actor, owner)
    with pytest.raises(ValidationError) as error:
        _create(actor, owner, name="Another")
    assert "slug" in error.value.message_dict
    assert Agent.objects.count() == 1


def test_create_refuses_missing_required_fields(actor, owner):
    with pytest.raises(ValidationError) as error:
        services.agent_create(actor=actor, slug="x", owner=owner)
    assert set(error.value.message_dict) == {"name", "model_name"}


# Profile changes ---------------------------------------------------------------------------


def test_update_records_before_and_after(actor, owner):
    agent = AgentFactory(owner=owner, risk_tier=RiskTier.LOW)
    before = ChangeRecord.objects.count()

    updated = services.agent_update(actor=actor, agent=agent, risk_tier=RiskTier.CRITICAL, description="Scores alerts.")

    assert updated.risk_tier == RiskTier.CRITICAL
    assert Agent.objects.get(pk=agent.pk).description == "Scores alerts."
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(agent, ChangeAction.AGENT_UPDATED, actor=actor)
    assert record.changed_fields == ["description", "risk_tier"]
    assert (record.before["risk_tier"], record.after["risk_tier"]) == ("low", "critical")
    assert (record.before["description"], record.after["description"]) == ("", "Scores alerts.")


def test_update_that_changes_nothing_records_nothing(actor):
    agent = AgentFactory(name="Same")
    before = ChangeRecord.objects.count()
    services.agent_update(actor=actor, agent=agent, name="Same")
    assert ChangeRecord.objects.count() == before


def test_update_refuses_status_and_unknown_fields(actor):
    agent = AgentFactory()
    with pytest.raises(InvalidInput) as error:
        services.agent_update(actor=actor, agent=agent, status=AgentStatus.ACTIVE)
    assert "status" in error.value.detail
    with pytest.raises(InvalidInput) as error:
        services.agent_update(actor=actor, agent=agent, secret_hash="x", status_changed_at=None)
    assert set(error.value.detail) == {"secret_hash", "status_changed_at"}
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.DRAFT
    assert not change_records(agent, ChangeAction.AGENT_UPDATED).exists()


def test_update_refuses_a_bad_scope_and_keeps_the_old_one(actor):
    agent = AgentFactory(scope=VALID_SCOPE)
    with pytest.raises(ValidationError) as error:
        services.agent_update(actor=actor, agent=agent, scope={**VALID_SCOPE, "max_delegation_depth": 100})
    assert "scope" in error.value.message_dict
    assert Agent.objects.get(pk=agent.pk).scope == VALID_SCOPE


def test_agent_cannot_supervise_itself(actor):
    agent = AgentFactory()
    with pytest.raises(ValidationError) as error:
        services.agent_update(actor=actor, agent=agent, supervisor=agent)
    assert "supervisor" in error.value.message_dict
    assert Agent.objects.get(pk=agent.pk).supervisor is None


def test_supervisor_cycle_through_others_is_refused(actor):
    top = AgentFactory()
    middle = AgentFactory(supervisor=top)
    bottom = AgentFactory(supervisor=middle)
    with pytest.raises(ValidationError) as error:
        services.agent_update(actor=actor, agent=top, supervisor=bottom)
    assert "supervisor" in error.value.message_dict
    assert Agent.objects.get(pk=top.pk).supervisor is None
    # A chain without a loop is fine.
    other = AgentFactory()
    assert services.agent_update(actor=actor, agent=other, supervisor=bottom).supervisor == bottom


# Lifecycle ---------------------------------------------------------------------------------

ALL_PAIRS = list(itertools.product(AgentStatus.values, AgentStatus.values))
LEGAL = [(source, target) for source, target in ALL_PAIRS if target in AGENT_TRANSITIONS[source]]
ILLEGAL = [(source, target) for source, target in ALL_PAIRS if target not in AGENT_TRANSITIONS[source]]


def test_state_machine_is_the_documented_one():
    assert set(LEGAL) == {
        ("draft", "active"),
        ("draft", "retired"),
        ("active", "suspended"),
        ("active", "quarantined"),
        ("active", "retired"),
        ("suspended", "active"),
        ("suspended", "quarantined"),
        ("suspended", "retired"),
        ("quarantined", "active"),
        ("quarantined", "suspended"),
        ("quarantined", "retired"),
    }


@pytest.mark.parametrize(("source", "target"), LEGAL, ids=[f"{s}->{t}" for s, t in LEGAL])
def test_legal_transition_moves_and_records(actor, source, target):
    agent = AgentFactory(status=source)
    before = ChangeRecord.objects.count()

    moved = services.agent_transition(actor=actor, agent=agent, to=target, reason="Checked by a human.")

    stored = Agent.objects.get(pk=agent.pk)
    assert moved.status == stored.status == target
    assert stored.status_changed_at is not None
    assert ChangeRecord.objects.count() == before + 1
    record = change_records(agent, ChangeAction.AGENT_STATUS_CHANGED).last()
    assert (record.before["status"], record.after["status"]) == (source, target)
    assert (record.actor_kind, record.actor_id) == ("system", "test")
    assert record.reason == "Checked by a human."
    assert "status" in record.changed_fields


@pytest.mark.parametrize(("source", "target"), ILLEGAL, ids=[f"{s}->{t}" for s, t in ILLEGAL])
def test_illegal_transition_is_refused_and_changes_nothing(actor, source, target):
    agent = AgentFactory(status=source)
    before = ChangeRecord.objects.count()

    with pytest.raises(IllegalTransition) as error:
        services.agent_transition(actor=actor, agent=agent, to=target, reason="Trying anyway.")

    assert error.value.status == 409
    assert error.value.detail == {"status": source, "allowed": sorted(AGENT_TRANSITIONS[source])}
    assert Agent.objects.get(pk=agent.pk).status == source
    assert ChangeRecord.objects.count() == before


def test_unknown_status_is_invalid_input(actor):
    agent = AgentFactory()
    with pytest.raises(InvalidInput) as error:
        services.agent_transition(actor=actor, agent=agent, to="paused")
    assert "status" in error.value.detail


def test_transition_uses_the_stored_status_not_a_stale_object(actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    stale = Agent.objects.get(pk=agent.pk)
    services.agent_transition(actor=actor, agent=agent, to=AgentStatus.SUSPENDED)
    with pytest.raises(IllegalTransition):
        services.agent_transition(actor=actor, agent=stale, to=AgentStatus.SUSPENDED)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("active", "quarantined"),
        ("suspended", "quarantined"),
        ("quarantined", "active"),
        ("quarantined", "suspended"),
        ("quarantined", "retired"),
    ],
)
@pytest.mark.parametrize("reason", ["", "   \n"])
def test_entering_or_leaving_quarantine_needs_a_reason(actor, source, target, reason):
    agent = AgentFactory(status=source)
    before = ChangeRecord.objects.count()
    with pytest.raises(InvalidInput) as error:
        services.agent_transition(actor=actor, agent=agent, to=target, reason=reason)
    assert "reason" in error.value.detail
    assert Agent.objects.get(pk=agent.pk).status == source
    assert ChangeRecord.objects.count() == before


def test_other_moves_need_no_reason(actor):
    agent = AgentFactory()
    services.agent_transition(actor=actor, agent=agent, to=AgentStatus.ACTIVE)
    services.agent_transition(actor=actor, agent=agent, to=AgentStatus.SUSPENDED)
    record = change_records(agent, ChangeAction.AGENT_STATUS_CHANGED).last()
    assert record.reason == ""


def test_reason_is_stored_stripped(actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    services.agent_transition(actor=actor, agent=agent, to=AgentStatus.QUARANTINED, reason="  anomaly score 0.97 \n")
    record = change_records(agent, ChangeAction.AGENT_STATUS_CHANGED).last()
    assert record.reason == "anomaly score 0.97"


def test_retiring_revokes_every_active_key_with_one_record_each(actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    first = services.credential_issue(actor=actor, agent=agent, name="one").credential
    second = services.credential_issue(actor=actor, agent=agent, name="two").credential
    already = services.credential_issue(actor=actor, agent=agent, name="old").credential
    services.credential_revoke(actor=actor, credential=already, reason="Leaked.")
    before = ChangeRecord.objects.count()

    services.agent_transition(actor=actor, agent=agent, to=AgentStatus.RETIRED)

    assert ChangeRecord.objects.count() == before + 3
    retirement = assert_change_record(agent, ChangeAction.AGENT_STATUS_CHANGED, count=2)[-1]
    assert (retirement.after["status"], retirement.actor_id) == (AgentStatus.RETIRED, actor.id)
    for credential in (first, second):
        credential.refresh_from_db()
        assert credential.state() == "revoked"
        assert credential.revoked_reason == "Agent retired."
        record = assert_change_record(credential, ChangeAction.CREDENTIAL_REVOKED, actor=actor)
        assert record.agent_id == agent.pk
    # The key revoked before keeps its own reason and is not revoked twice.
    already.refresh_from_db()
    assert already.revoked_reason == "Leaked."
    assert_change_record(already, ChangeAction.CREDENTIAL_REVOKED, count=1)


def test_retired_agent_is_final_and_read_only(actor, known_tools):
    agent = AgentFactory(status=AgentStatus.RETIRED)
    for target in AgentStatus.values:
        with pytest.raises(IllegalTransition):
            services.agent_transition(actor=actor, agent=agent, to=target, reason="Bring it back.")
    with pytest.raises(Conflict):
        services.agent_update(actor=actor, agent=agent, name="Renamed")
    with pytest.raises(Conflict):
        services.grant_create(actor=actor, agent=agent, tool="payments.transfer", reason="No.")
    with pytest.raises(Conflict):
        services.credential_issue(actor=actor, agent=agent)
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.status, stored.name) == (AgentStatus.RETIRED, agent.name)
    assert not Credential.objects.filter(agent=agent).exists()
    assert not change_records(agent, ChangeAction.AGENT_UPDATED).exists()


def test_allowed_transitions_follow_the_state_machine():
    for status in AgentStatus.values:
        agent = Agent(status=status)
        assert services.allowed_transitions(agent) == sorted(AGENT_TRANSITIONS[status])


def test_is_active_and_is_quarantined():
    assert Agent(status=AgentStatus.ACTIVE).is_active
    assert not Agent(status=AgentStatus.SUSPENDED).is_active
    assert Agent(status=AgentStatus.QUARANTINED).is_quarantined
    assert not Agent(status=AgentStatus.ACTIVE).is_quarantined


# Saves outside the services ----------------------------------------------------------------


def test_plain_save_of_an_existing_agent_is_recorded_as_unattributed():
    agent = AgentFactory(name="Before")
    agent.name = "After"
    agent.save()  # as from `manage.py shell`

    record = assert_change_record(agent, ChangeAction.UNATTRIBUTED_SAVE)
    assert (record.actor_kind, record.actor_id) == ("system", "unattributed")
    assert "os user" in record.actor_label
    assert (record.before["name"], record.after["name"]) == ("Before", "After")
    assert "name" in record.changed_fields
    assert record.agent_id == agent.pk


def test_plain_create_is_recorded_as_unattributed(owner):
    role = Role.objects.create(slug="shell-role", name="Made in a shell")
    record = assert_change_record(role, ChangeAction.UNATTRIBUTED_SAVE)
    assert record.actor_kind == "system"
    assert record.before is None
    assert record.after["slug"] == "shell-role"
    assert record.role_id == role.pk


def test_services_leave_no_unattributed_records(actor, owner, known_tools):
    role = RoleFactory()
    agent = AgentFactory(owner=owner, role=role, status=AgentStatus.ACTIVE)
    grant = services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="Reads the CRM.")
    services.grant_update(actor=actor, grant=grant, rate_limit_per_minute=5)
    issued = services.credential_issue(actor=actor, agent=agent)
    services.credential_rotate(actor=actor, credential=issued.credential)
    services.agent_transition(actor=actor, agent=agent, to=AgentStatus.RETIRED)
    services.grant_delete(actor=actor, grant=grant)
    assert not ChangeRecord.objects.filter(action=ChangeAction.UNATTRIBUTED_SAVE).exists()


def test_change_records_are_append_only(actor):
    agent = AgentFactory()
    record = change_records(agent).first()
    record.reason = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        record.save()
    with pytest.raises(ValueError, match="append-only"):
        record.delete()
    assert ChangeRecord.objects.get(pk=record.pk).reason == ""
