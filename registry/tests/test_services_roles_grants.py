"""Role and grant services: validation, the rules of authority, and one change record per write."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from core.actors import Actor
from core.errors import Conflict, InvalidInput
from core.testing import assert_change_record, change_records
from registry import services
from registry.choices import AgentStatus, ChangeAction
from registry.models import ChangeRecord, Grant, Role
from registry.tests.factories import AgentFactory, GrantFactory, RoleFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_tools")]


# Roles -------------------------------------------------------------------------------------


def test_role_create_records_one_change(actor):
    role = services.role_create(actor=actor, slug="aml-analyst", name="AML analyst", description="Reads alerts.")
    assert Role.objects.get(pk=role.pk).name == "AML analyst"
    record = assert_change_record(role, ChangeAction.ROLE_CREATED, actor=actor)
    assert record.before is None
    assert record.after["slug"] == "aml-analyst"
    assert record.role_id == role.pk
    assert ChangeRecord.objects.exclude(action__startswith="tool.").count() == 1


def test_role_create_validates(actor):
    services.role_create(actor=actor, slug="analyst", name="Analyst")
    with pytest.raises(ValidationError) as error:
        services.role_create(actor=actor, slug="analyst", name="Copy")
    assert "slug" in error.value.message_dict
    with pytest.raises(ValidationError) as error:
        services.role_create(actor=actor, slug="not a slug!", name="")
    assert set(error.value.message_dict) == {"slug", "name"}
    assert Role.objects.count() == 1


def test_role_update_records_before_and_after(actor):
    role = RoleFactory(name="Old")
    before = ChangeRecord.objects.count()
    services.role_update(actor=actor, role=role, name="New", description="Shared by analysts.")
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(role, ChangeAction.ROLE_UPDATED, actor=actor)
    assert (record.before["name"], record.after["name"]) == ("Old", "New")
    assert record.changed_fields == ["description", "name"]


def test_role_update_refuses_unknown_fields(actor):
    role = RoleFactory()
    with pytest.raises(InvalidInput) as error:
        services.role_update(actor=actor, role=role, grants=[])
    assert set(error.value.detail) == {"grants"}


def test_role_in_use_cannot_be_deleted(actor):
    role = RoleFactory()
    agent = AgentFactory(role=role)
    GrantFactory.for_role(role)
    before = ChangeRecord.objects.count()
    with pytest.raises(Conflict) as error:
        services.role_delete(actor=actor, role=role)
    assert error.value.detail == {"agents": [agent.slug]}
    assert Role.objects.filter(pk=role.pk).exists()
    assert Grant.objects.filter(role=role).count() == 1
    assert ChangeRecord.objects.count() == before


def test_role_delete_removes_its_grants_with_records(actor):
    role = RoleFactory()
    grants = [GrantFactory.for_role(role), GrantFactory.for_role(role)]
    before = ChangeRecord.objects.count()

    services.role_delete(actor=actor, role=role)

    assert not Role.objects.filter(pk=role.pk).exists()
    assert not Grant.objects.filter(pk__in=[grant.pk for grant in grants]).exists()
    assert ChangeRecord.objects.count() == before + 3
    for grant in grants:
        record = assert_change_record(grant, ChangeAction.GRANT_REMOVED, actor=actor)
        assert record.after is None
        assert record.before["tool_id"] == grant.tool_id
        assert record.role_id == role.pk
        assert role.slug in record.reason
    record = assert_change_record(role, ChangeAction.ROLE_DELETED, actor=actor)
    assert (record.before["slug"], record.after) == (role.slug, None)


# Grants ------------------------------------------------------------------------------------


def test_grant_to_an_agent_records_who_and_why(owner):
    granter = UserFactory(username="granter")
    user_actor = Actor.from_user(granter)
    agent = AgentFactory()
    before = ChangeRecord.objects.count()

    grant = services.grant_create(
        actor=user_actor,
        agent=agent,
        tool="payments.transfer",
        constraints={"amount": {"maximum": 10000}, "currency": {"enum": ["EUR"]}},
        rate_limit_per_minute=5,
        reason="  Pays approved invoices. ",
    )

    assert grant.granted_by == granter
    assert grant.reason == "Pays approved invoices."
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(grant, ChangeAction.GRANT_ADDED, actor=user_actor)
    assert record.actor_kind == "user"
    assert record.agent_id == agent.pk
    assert record.after["constraints"] == {"amount": {"maximum": 10000}, "currency": {"enum": ["EUR"]}}
    assert record.reason == "Pays approved invoices."


def test_system_actor_leaves_granted_by_empty(actor):
    grant = GrantFactory(actor=actor)
    assert grant.granted_by is None


def test_grant_to_a_role(actor):
    role = RoleFactory()
    grant = services.grant_create(actor=actor, role=role, tool="aml.alerts.read", reason="Triage.")
    record = assert_change_record(grant, ChangeAction.GRANT_ADDED, actor=actor)
    assert (record.role_id, record.agent_id) == (role.pk, None)


@pytest.mark.parametrize("holders", ["both", "neither"])
def test_grant_needs_exactly_one_holder(actor, holders):
    agent, role = AgentFactory(), RoleFactory()
    fields = {"agent": agent, "role": role} if holders == "both" else {}
    with pytest.raises(ValidationError) as error:
        services.grant_create(actor=actor, tool="crm.read", reason="x", **fields)
    assert "A grant belongs to exactly one agent or one role." in error.value.messages
    assert not Grant.objects.exists()


def test_grant_is_unique_per_agent_and_tool(actor):
    agent = AgentFactory()
    services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="x")
    with pytest.raises(ValidationError) as error:
        services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="again")
    assert "This agent already has a grant for this tool; edit it instead." in error.value.messages
    # Another agent, or a role, may hold the same tool.
    services.grant_create(actor=actor, agent=AgentFactory(), tool="crm.read", reason="x")
    services.grant_create(actor=actor, role=RoleFactory(), tool="crm.read", reason="x")
    assert Grant.objects.filter(tool="crm.read").count() == 3


def test_grant_is_unique_per_role_and_tool(actor):
    role = RoleFactory()
    services.grant_create(actor=actor, role=role, tool="crm.read", reason="x")
    with pytest.raises(ValidationError) as error:
        services.grant_create(actor=actor, role=role, tool="crm.read", reason="again")
    assert "This role already has a grant for this tool; edit it instead." in error.value.messages


def test_grant_validity_window_must_be_ordered(actor):
    now = timezone.now()
    agent = AgentFactory()
    with pytest.raises(ValidationError) as error:
        services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="x", valid_from=now, valid_until=now)
    assert "'Valid until' must be after 'valid from'." in error.value.messages
    grant = services.grant_create(
        actor=actor, agent=agent, tool="crm.read", reason="x", valid_from=now, valid_until=now + dt.timedelta(hours=1)
    )
    with pytest.raises(ValidationError):
        services.grant_update(actor=actor, grant=grant, valid_until=now - dt.timedelta(hours=1))
    assert Grant.objects.get(pk=grant.pk).valid_until == now + dt.timedelta(hours=1)


@pytest.mark.parametrize(
    "constraints",
    [
        {"amount": {"maximum": "10000"}},
        {"amount": {}},
        {"amount": {"minimum": 1, "script": "rm -rf /"}},
        {"amount": 5},
        {"currency": {"enum": []}},
        {"name": {"pattern": "("}},
        {"bad key!": {"maximum": 1}},
        {"amount\n": {"maximum": 1}},  # a key that never matches an argument would never limit it
        ["amount"],
    ],
)
def test_grant_constraints_must_follow_the_schema(actor, constraints):
    with pytest.raises(ValidationError) as error:
        services.grant_create(actor=actor, agent=AgentFactory(), tool="crm.read", reason="x", constraints=constraints)
    assert list(error.value.message_dict) == ["constraints"]
    assert not Grant.objects.exists()


def test_grant_constraints_accept_json_pointers(actor):
    constraints = {"/recipient/country": {"enum": ["DE", "FR"]}, "amount": {"exclusiveMaximum": 100, "minimum": 0}}
    grant = services.grant_create(
        actor=actor, agent=AgentFactory(), tool="crm.read", reason="x", constraints=constraints
    )
    assert Grant.objects.get(pk=grant.pk).constraints == constraints


@pytest.mark.parametrize("tool", ["transfer", "Payments.transfer", "payments.", ".transfer", "payments..transfer", ""])
def test_tool_name_must_be_dotted_lower_case(actor, tool):
    with pytest.raises(ValidationError) as error:
        services.tool_create(actor=actor, name=tool)
    assert "name" in error.value.message_dict


def test_tool_name_with_a_trailing_newline_is_refused(actor):
    with pytest.raises(ValidationError):
        services.tool_create(actor=actor, name="payments.transfer\n")


def test_a_grant_for_an_unregistered_tool_is_refused_and_records_nothing(actor):
    agent = AgentFactory()
    before = ChangeRecord.objects.count()
    with pytest.raises(InvalidInput) as error:
        services.grant_create(actor=actor, agent=agent, tool="payments.wire_everything", reason="x")
    assert "register it under Tools first" in str(error.value)
    assert not Grant.objects.filter(agent=agent).exists()
    assert ChangeRecord.objects.count() == before


def test_tool_create_and_update_are_recorded_and_the_name_is_fixed(actor):
    tool = services.tool_create(actor=actor, name="ledger.post", side_effect="financial", default_risk="high")
    assert_change_record(tool, ChangeAction.TOOL_CREATED, actor=actor)
    services.tool_update(actor=actor, tool=tool, description="Posts a ledger entry.", enforce_hardening=True)
    record = assert_change_record(tool, ChangeAction.TOOL_UPDATED, actor=actor)
    assert record.changed_fields == ["description", "enforce_hardening"]
    with pytest.raises(InvalidInput):
        services.tool_update(actor=actor, tool=tool, name="ledger.rename")


def test_retired_agent_cannot_receive_grants(actor):
    agent = AgentFactory(status=AgentStatus.RETIRED)
    with pytest.raises(Conflict):
        services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="x")
    assert not Grant.objects.exists()


def test_grant_cannot_be_moved_to_a_retired_agent(actor):
    grant = GrantFactory()
    retired = AgentFactory(status=AgentStatus.RETIRED)
    with pytest.raises(Conflict):
        services.grant_update(actor=actor, grant=grant, agent=retired)
    assert Grant.objects.get(pk=grant.pk).agent_id == grant.agent_id


def test_grant_update_records_before_and_after(actor):
    grant = GrantFactory(rate_limit_per_minute=10)
    before = ChangeRecord.objects.count()
    services.grant_update(actor=actor, grant=grant, rate_limit_per_minute=3, reason="Tighter.")
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(grant, ChangeAction.GRANT_CHANGED, actor=actor)
    assert (record.before["rate_limit_per_minute"], record.after["rate_limit_per_minute"]) == (10, 3)
    assert record.changed_fields == ["rate_limit_per_minute", "reason"]
    assert record.reason == "Tighter."


def test_grant_update_that_changes_nothing_records_nothing(actor):
    grant = GrantFactory(rate_limit_per_minute=10)
    before = ChangeRecord.objects.count()
    services.grant_update(actor=actor, grant=grant, rate_limit_per_minute=10)
    assert ChangeRecord.objects.count() == before


def test_grant_update_refuses_unknown_fields(actor):
    grant = GrantFactory()
    with pytest.raises(InvalidInput) as error:
        services.grant_update(actor=actor, grant=grant, granted_by=None)
    assert set(error.value.detail) == {"granted_by"}


def test_grant_delete_records_the_removed_grant(actor):
    grant = GrantFactory(tool="crm.write")
    before = ChangeRecord.objects.count()
    services.grant_delete(actor=actor, grant=grant, reason="No longer needed.")
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert ChangeRecord.objects.count() == before + 1
    record = assert_change_record(grant, ChangeAction.GRANT_REMOVED, actor=actor)
    assert (record.before["tool_id"], record.after, record.reason) == ("crm.write", None, "No longer needed.")
    assert record.agent_id == grant.agent_id
    # The removal stays in the agent's history.
    assert change_records(grant).count() == 2


def test_grant_is_current_within_its_window():
    now = timezone.now()
    hour = dt.timedelta(hours=1)
    assert Grant().is_current(now)
    assert Grant(valid_from=now - hour, valid_until=now + hour).is_current(now)
    assert not Grant(valid_from=now + hour).is_current(now)
    assert not Grant(valid_until=now).is_current(now)
    assert Grant(valid_from=now).is_current(now)
