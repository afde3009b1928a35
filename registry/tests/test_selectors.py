"""Registry reads: an agent's effective authority, lists and history."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from registry import selectors, services
from registry.choices import ChangeAction
from registry.tests.factories import AgentFactory, GrantFactory, RoleFactory

pytestmark = pytest.mark.django_db


def test_authority_is_own_grants_plus_role_grants(actor):
    role = RoleFactory()
    agent = AgentFactory(role=role)
    own = GrantFactory(agent=agent, tool="crm.read")
    from_role = GrantFactory.for_role(role, tool="aml.alerts.read")
    both_own = GrantFactory(agent=agent, tool="payments.transfer")
    both_role = GrantFactory.for_role(role, tool="payments.transfer")
    GrantFactory(tool="crm.read")  # another agent's
    GrantFactory.for_role(RoleFactory(), tool="email.send")  # another role's

    authority = selectors.agent_authority(agent)

    assert [(item.grant.pk, item.source) for item in authority] == [
        (from_role.pk, "role"),
        (own.pk, "agent"),
        (both_own.pk, "agent"),
        (both_role.pk, "role"),
    ]


def test_authority_without_a_role_is_own_grants_only():
    agent = AgentFactory()
    grant = GrantFactory(agent=agent)
    GrantFactory.for_role(RoleFactory())
    assert [item.grant for item in selectors.agent_authority(agent)] == [grant]


def test_authority_leaves_out_grants_outside_their_window():
    now = timezone.now()
    hour = dt.timedelta(hours=1)
    role = RoleFactory()
    agent = AgentFactory(role=role)
    current = GrantFactory(agent=agent, tool="a.current", valid_from=now - hour, valid_until=now + hour)
    expired = GrantFactory(agent=agent, tool="b.expired", valid_from=now - 2 * hour, valid_until=now - hour)
    future = GrantFactory(agent=agent, tool="c.future", valid_from=now + hour)
    role_expired = GrantFactory.for_role(role, tool="d.role_expired", valid_until=now - hour)

    assert [item.grant for item in selectors.agent_authority(agent)] == [current]
    everything = selectors.agent_authority(agent, include_expired=True)
    assert {item.grant.pk for item in everything} == {current.pk, expired.pk, future.pk, role_expired.pk}


def test_authority_follows_a_role_change(actor):
    first, second = RoleFactory(), RoleFactory()
    GrantFactory.for_role(first, tool="first.tool")
    GrantFactory.for_role(second, tool="second.tool")
    agent = AgentFactory(role=first)
    assert [item.grant.tool_id for item in selectors.agent_authority(agent)] == ["first.tool"]
    agent = services.agent_update(actor=actor, agent=agent, role=second)
    assert [item.grant.tool_id for item in selectors.agent_authority(agent)] == ["second.tool"]


def test_agent_list_counts_own_grants_only():
    role = RoleFactory()
    agent = AgentFactory(role=role)
    GrantFactory(agent=agent)
    GrantFactory(agent=agent)
    GrantFactory.for_role(role)
    assert selectors.agent_get(agent.pk).grant_count == 2


def test_role_list_counts_agents_and_grants():
    role = RoleFactory()
    AgentFactory(role=role)
    AgentFactory(role=role)
    GrantFactory.for_role(role)
    listed = selectors.role_list().get(pk=role.pk)
    assert (listed.agent_count, listed.grant_count) == (2, 1)


def test_credential_list_filters_by_agent(actor):
    agent, other = AgentFactory(), AgentFactory()
    mine = services.credential_issue(actor=actor, agent=agent).credential
    services.credential_issue(actor=actor, agent=other)
    assert list(selectors.credential_list(agent)) == [mine]
    assert selectors.credential_list().count() == 2


def test_agent_history_has_the_agent_its_grants_and_keys_newest_first(actor):
    agent = AgentFactory()
    grant = GrantFactory(agent=agent)
    services.credential_issue(actor=actor, agent=agent)
    services.grant_delete(actor=actor, grant=grant)
    AgentFactory()  # another agent's history stays out
    actions = [record.action for record in selectors.agent_history(agent)]
    assert actions == [
        ChangeAction.GRANT_REMOVED,
        ChangeAction.CREDENTIAL_ISSUED,
        ChangeAction.GRANT_ADDED,
        ChangeAction.AGENT_CREATED,
    ]


def test_role_history(actor):
    role = RoleFactory()
    GrantFactory.for_role(role)
    services.role_update(actor=actor, role=role, name="Renamed")
    actions = [record.action for record in selectors.role_history(role)]
    assert actions == [ChangeAction.ROLE_UPDATED, ChangeAction.GRANT_ADDED, ChangeAction.ROLE_CREATED]
