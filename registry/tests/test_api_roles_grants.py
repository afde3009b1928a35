"""/api/v1/roles and /api/v1/grants: CRUD through the services, with their records."""

from __future__ import annotations

import pytest

from core.actors import Actor
from core.testing import assert_change_record, assert_error
from registry.choices import AgentStatus, ChangeAction
from registry.models import ChangeRecord, Grant, Role
from registry.tests.factories import AgentFactory, GrantFactory, RoleFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_tools")]

ROLES = "/api/v1/roles"
GRANTS = "/api/v1/grants"


# Roles -------------------------------------------------------------------------------------


def test_role_crud(admin_api, warden_admin):
    user = Actor.from_user(warden_admin)
    created = admin_api.post(ROLES, {"slug": "analyst", "name": "Analyst"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["slug"], body["agent_count"], body["grant_count"]) == ("analyst", 0, 0)
    role = Role.objects.get(pk=body["id"])
    assert_change_record(role, ChangeAction.ROLE_CREATED, actor=user)

    assert admin_api.get(f"{ROLES}/{role.pk}").json()["name"] == "Analyst"
    updated = admin_api.patch(f"{ROLES}/{role.pk}", {"name": "AML analyst"}, format="json")
    assert updated.json()["name"] == "AML analyst"
    assert_change_record(role, ChangeAction.ROLE_UPDATED, actor=user)

    listed = admin_api.get(f"{ROLES}?slug=analyst").json()
    assert [item["slug"] for item in listed["results"]] == ["analyst"]

    GrantFactory.for_role(role)
    assert admin_api.get(f"{ROLES}/{role.pk}").json()["grant_count"] == 1
    deleted = admin_api.delete(f"{ROLES}/{role.pk}")
    assert deleted.status_code == 204
    assert not Role.objects.filter(pk=role.pk).exists()
    assert not Grant.objects.exists()
    assert_change_record(role, ChangeAction.ROLE_DELETED, actor=user)
    assert ChangeRecord.objects.filter(action=ChangeAction.GRANT_REMOVED, role_id=role.pk).count() == 1


def test_role_counts(admin_api):
    role = RoleFactory()
    AgentFactory(role=role)
    AgentFactory(role=role)
    GrantFactory.for_role(role)
    body = admin_api.get(f"{ROLES}/{role.pk}").json()
    assert (body["agent_count"], body["grant_count"]) == (2, 1)


def test_role_in_use_is_not_deleted(admin_api):
    role = RoleFactory()
    AgentFactory(role=role)
    assert_error(admin_api.delete(f"{ROLES}/{role.pk}"), 409, "conflict")
    assert Role.objects.filter(pk=role.pk).exists()


# Grants ------------------------------------------------------------------------------------


def test_grant_crud(admin_api, warden_admin):
    user = Actor.from_user(warden_admin)
    agent = AgentFactory(slug="payer")
    created = admin_api.post(
        GRANTS,
        {
            "agent": "payer",
            "tool": "payments.transfer",
            "constraints": {"amount": {"maximum": 100}},
            "rate_limit_per_minute": 3,
            "reason": "Pays invoices.",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["agent"], body["role"], body["granted_by"]) == ("payer", None, warden_admin.username)
    grant = Grant.objects.get(pk=body["id"])
    assert grant.agent == agent
    record = assert_change_record(grant, ChangeAction.GRANT_ADDED, actor=user)
    assert record.reason == "Pays invoices."

    updated = admin_api.patch(f"{GRANTS}/{grant.pk}", {"constraints": {"amount": {"maximum": 50}}}, format="json")
    assert updated.status_code == 200, updated.json()
    assert Grant.objects.get(pk=grant.pk).constraints == {"amount": {"maximum": 50}}
    assert_change_record(grant, ChangeAction.GRANT_CHANGED, actor=user)

    assert admin_api.delete(f"{GRANTS}/{grant.pk}").status_code == 204
    assert not Grant.objects.exists()
    record = assert_change_record(grant, ChangeAction.GRANT_REMOVED, actor=user)
    assert record.agent_id == agent.pk


def test_grant_to_a_role(admin_api):
    RoleFactory(slug="analyst")
    response = admin_api.post(GRANTS, {"role": "analyst", "tool": "crm.read", "reason": "x"}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["role"], response.json()["agent"]) == ("analyst", None)


@pytest.mark.parametrize("holders", [{}, {"agent": "a1", "role": "r1"}, {"agent": None, "role": None}])
def test_grant_needs_exactly_one_holder(admin_api, holders):
    AgentFactory(slug="a1")
    RoleFactory(slug="r1")
    response = admin_api.post(GRANTS, {"tool": "crm.read", "reason": "x", **holders}, format="json")
    body = assert_error(response, 400, "invalid")
    assert "non_field_errors" in body["detail"]
    assert not Grant.objects.exists()


def test_duplicate_grant_is_invalid(admin_api):
    grant = GrantFactory(tool="crm.read")
    response = admin_api.post(GRANTS, {"agent": grant.agent.slug, "tool": "crm.read", "reason": "x"}, format="json")
    body = assert_error(response, 400, "invalid")
    assert body["detail"] == {"non_field_errors": ["This agent already has a grant for this tool; edit it instead."]}
    assert Grant.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"tool": "transfer"}, "tool"),
        ({"constraints": {"amount": {"max": 1}}}, "constraints"),
        ({"rate_limit_per_minute": -1}, "rate_limit_per_minute"),
        ({"valid_until": "not a date"}, "valid_until"),
        ({"reason": ""}, "reason"),
    ],
)
def test_grant_field_errors(admin_api, fields, field):
    AgentFactory(slug="a1")
    payload = {"agent": "a1", "tool": "crm.read", "reason": "x", **fields}
    body = assert_error(admin_api.post(GRANTS, payload, format="json"), 400, "invalid")
    assert field in body["detail"], body
    assert not Grant.objects.exists()


def test_grant_window_must_be_ordered(admin_api):
    AgentFactory(slug="a1")
    payload = {
        "agent": "a1",
        "tool": "crm.read",
        "reason": "x",
        "valid_from": "2030-01-02T00:00:00Z",
        "valid_until": "2030-01-01T00:00:00Z",
    }
    body = assert_error(admin_api.post(GRANTS, payload, format="json"), 400, "invalid")
    assert body["detail"] == {"non_field_errors": ["'Valid until' must be after 'valid from'."]}


def test_grant_to_a_retired_agent_is_a_conflict(admin_api):
    AgentFactory(slug="gone", status=AgentStatus.RETIRED)
    response = admin_api.post(GRANTS, {"agent": "gone", "tool": "crm.read", "reason": "x"}, format="json")
    assert_error(response, 409, "conflict")
    assert not Grant.objects.exists()


def test_filter_grants(admin_api):
    role = RoleFactory(slug="analyst")
    agent = AgentFactory(slug="payer")
    GrantFactory(agent=agent, tool="payments.transfer")
    GrantFactory(agent=agent, tool="crm.read")
    GrantFactory.for_role(role, tool="crm.read")

    def tools(query):
        return sorted(
            (item["tool"], item["agent"] or item["role"])
            for item in admin_api.get(f"{GRANTS}?{query}").json()["results"]
        )

    assert tools("agent=payer") == [("crm.read", "payer"), ("payments.transfer", "payer")]
    assert tools("role=analyst") == [("crm.read", "analyst")]
    assert tools("tool=crm.read") == [("crm.read", "analyst"), ("crm.read", "payer")]
