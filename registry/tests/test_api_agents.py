"""/api/v1/agents: create, read, update, lifecycle, card, history, filtering and pagination."""

from __future__ import annotations

import uuid

import pytest

from core.actors import Actor
from core.testing import assert_change_record, assert_error
from registry import services
from registry.cards import WARDEN_EXTENSION_URI
from registry.choices import AgentStatus, ChangeAction, ModelKind, RiskTier
from registry.models import Agent, ChangeRecord
from registry.tests.factories import AgentFactory, GrantFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db

AGENTS = "/api/v1/agents"
SCOPE = {"data_domains": ["alerts"], "environments": ["production"], "max_delegation_depth": 1}


def _payload(owner, **fields):
    return {"slug": "alert-triage", "name": "Alert triage", "owner": owner.username, "model_name": "phi-4", **fields}


# Create, read, update ----------------------------------------------------------------------


def test_create_agent(admin_api, warden_admin, owner):
    role = RoleFactory(slug="aml-analyst")
    supervisor = AgentFactory(slug="orchestrator")
    response = admin_api.post(
        AGENTS,
        _payload(
            owner,
            role="aml-analyst",
            supervisor="orchestrator",
            scope=SCOPE,
            risk_tier="high",
            model_kind="slm",
            description="Scores alerts.",
        ),
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == AgentStatus.DRAFT
    assert (body["owner"], body["role"], body["supervisor"]) == (owner.username, "aml-analyst", "orchestrator")
    assert body["scope"] == SCOPE
    assert body["grant_count"] == 0
    agent = Agent.objects.get(pk=body["id"])
    assert (agent.role, agent.supervisor, agent.risk_tier, agent.model_kind) == (
        role,
        supervisor,
        RiskTier.HIGH,
        ModelKind.SLM,
    )
    assert_change_record(agent, ChangeAction.AGENT_CREATED, actor=Actor.from_user(warden_admin))


def test_create_without_trailing_slash_and_with_one(admin_api, owner):
    assert admin_api.post(AGENTS, _payload(owner), format="json").status_code == 201
    assert admin_api.post(AGENTS + "/", _payload(owner, slug="second"), format="json").status_code == 201


def test_create_refuses_a_status(admin_api, owner):
    response = admin_api.post(AGENTS, _payload(owner, status="active"), format="json")
    body = assert_error(response, 400, "invalid")
    assert "status" in body["detail"]
    assert not Agent.objects.exists()


def test_create_refuses_a_bad_scope_with_its_field(admin_api, owner):
    response = admin_api.post(AGENTS, _payload(owner, scope={"data_domains": []}), format="json")
    body = assert_error(response, 400, "invalid")
    assert list(body["detail"]) == ["scope"]
    assert not Agent.objects.exists()


def test_create_refuses_unknown_references(admin_api, owner):
    response = admin_api.post(AGENTS, _payload(owner, role="nope", supervisor="nobody"), format="json")
    body = assert_error(response, 400, "invalid")
    assert set(body["detail"]) == {"role", "supervisor"}


def test_retrieve_agent_with_authority_and_allowed_transitions(admin_api):
    role = RoleFactory()
    agent = AgentFactory(role=role, status=AgentStatus.ACTIVE)
    GrantFactory(agent=agent, tool="crm.read", constraints={"limit": {"maximum": 5}})
    GrantFactory.for_role(role, tool="aml.alerts.read")

    response = admin_api.get(f"{AGENTS}/{agent.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(agent.pk)
    assert body["allowed_transitions"] == ["quarantined", "retired", "suspended"]
    assert [(item["tool"], item["granted_via"]) for item in body["authority"]] == [
        ("aml.alerts.read", "role"),
        ("crm.read", "agent"),
    ]
    assert body["authority"][1]["constraints"] == {"limit": {"maximum": 5}}


def test_patch_agent_records_the_user(admin_api, warden_admin):
    agent = AgentFactory(risk_tier=RiskTier.LOW)
    response = admin_api.patch(f"{AGENTS}/{agent.pk}", {"risk_tier": "critical", "team": "Fraud"}, format="json")
    assert response.status_code == 200, response.json()
    assert (response.json()["risk_tier"], response.json()["team"]) == ("critical", "Fraud")
    record = assert_change_record(agent, ChangeAction.AGENT_UPDATED, actor=Actor.from_user(warden_admin))
    assert record.changed_fields == ["risk_tier", "team"]


def test_patch_cannot_change_the_status(admin_api):
    agent = AgentFactory()
    body = assert_error(admin_api.patch(f"{AGENTS}/{agent.pk}", {"status": "active"}, format="json"), 400, "invalid")
    assert "status" in body["detail"]
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.DRAFT


def test_patch_with_a_supervisor_cycle_is_invalid(admin_api):
    top = AgentFactory(slug="top")
    AgentFactory(slug="below", supervisor=top)
    response = admin_api.patch(f"{AGENTS}/{top.pk}", {"supervisor": "below"}, format="json")
    body = assert_error(response, 400, "invalid")
    assert list(body["detail"]) == ["supervisor"]


def test_patch_a_retired_agent_is_a_conflict(admin_api):
    agent = AgentFactory(status=AgentStatus.RETIRED)
    assert_error(admin_api.patch(f"{AGENTS}/{agent.pk}", {"name": "Back"}, format="json"), 409, "conflict")


def test_put_replaces_the_profile(admin_api, owner):
    agent = AgentFactory(description="old")
    payload = _payload(owner, slug=agent.slug, name="New name")
    response = admin_api.put(f"{AGENTS}/{agent.pk}", payload, format="json")
    assert response.status_code == 200, response.json()
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.name, stored.owner) == ("New name", owner)


def test_agents_cannot_be_deleted(admin_api):
    agent = AgentFactory()
    assert_error(admin_api.delete(f"{AGENTS}/{agent.pk}"), 405, "method_not_allowed")
    assert Agent.objects.filter(pk=agent.pk).exists()


# Lifecycle ---------------------------------------------------------------------------------


def test_transition_through_the_api(admin_api, warden_admin):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    response = admin_api.post(
        f"{AGENTS}/{agent.pk}/status", {"status": "quarantined", "reason": "Guardian score 0.98."}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "quarantined"
    assert response.json()["allowed_transitions"] == ["active", "retired", "suspended"]
    records = assert_change_record(agent, ChangeAction.AGENT_STATUS_CHANGED, count=2)
    assert (records[-1].actor_id, records[-1].reason) == (str(warden_admin.pk), "Guardian score 0.98.")


def test_illegal_transition_is_409(admin_api):
    agent = AgentFactory()
    body = assert_error(
        admin_api.post(f"{AGENTS}/{agent.pk}/status", {"status": "suspended"}, format="json"),
        409,
        "illegal_transition",
    )
    assert body["detail"] == {"status": "draft", "allowed": ["active", "retired"]}
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.DRAFT


def test_quarantine_without_reason_is_400(admin_api):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    body = assert_error(
        admin_api.post(f"{AGENTS}/{agent.pk}/status", {"status": "quarantined"}, format="json"), 400, "invalid"
    )
    assert "reason" in body["detail"]
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE


def test_transition_input_is_validated(admin_api):
    agent = AgentFactory()
    body = assert_error(
        admin_api.post(f"{AGENTS}/{agent.pk}/status", {"status": "paused"}, format="json"), 400, "invalid"
    )
    assert "status" in body["detail"]
    body = assert_error(
        admin_api.post(f"{AGENTS}/{agent.pk}/status", {"status": "active", "why": "x"}, format="json"), 400, "invalid"
    )
    assert body["detail"] == {"why": ["Unknown field."]}


# Card and history --------------------------------------------------------------------------


def test_agent_card_is_an_a2a_card_with_the_warden_extension(admin_api, settings):
    settings.WARDEN = {"ORGANIZATION_NAME": "Acme Bank", "ORGANIZATION_URL": "https://acme.example/"}
    owner = UserFactory(username="sponsor", email="sponsor@acme.example")
    role = RoleFactory(slug="aml-analyst", name="AML analyst")
    agent = AgentFactory(
        owner=owner,
        role=role,
        slug="triage",
        name="Triage",
        description="Scores alerts.",
        version="2.1.0",
        endpoint_url="https://agents.acme.example/triage",
        scope=SCOPE,
        risk_tier=RiskTier.HIGH,
        status=AgentStatus.ACTIVE,
    )
    GrantFactory(agent=agent, tool="crm.read", reason="Reads customer files.", rate_limit_per_minute=7)
    GrantFactory.for_role(role, tool="aml.alerts.read", constraints={"limit": {"maximum": 50}})

    response = admin_api.get(f"{AGENTS}/{agent.pk}/card")

    assert response.status_code == 200
    card = response.json()
    assert (card["name"], card["description"], card["version"]) == ("Triage", "Scores alerts.", "2.1.0")
    assert card["provider"] == {"organization": "Acme Bank", "url": "https://acme.example/"}
    assert card["supportedInterfaces"][0]["url"] == "https://agents.acme.example/triage"
    assert card["defaultInputModes"] == ["application/json"]
    skills = {skill["id"]: skill for skill in card["skills"]}
    assert set(skills) == {"crm.read", "aml.alerts.read"}
    assert skills["crm.read"]["description"] == "Reads customer files."
    assert "granted-via-role" in skills["aml.alerts.read"]["tags"]
    assert "granted-via-agent" in skills["crm.read"]["tags"]

    extension = card["capabilities"]["extensions"][0]
    assert extension["uri"] == WARDEN_EXTENSION_URI
    params = extension["params"]
    assert params["owner"] == {"username": "sponsor", "email": "sponsor@acme.example"}
    assert params["role"] == {"slug": "aml-analyst", "name": "AML analyst"}
    assert (params["scope"], params["risk_tier"], params["status"]) == (SCOPE, "high", "active")
    assert params["agent_id"] == str(agent.pk)
    authority = {item["tool"]: item for item in params["authority"]}
    assert authority["crm.read"]["granted_via"] == "agent"
    assert authority["crm.read"]["rate_limit_per_minute"] == 7
    assert authority["aml.alerts.read"] == {
        "tool": "aml.alerts.read",
        "granted_via": "role",
        "constraints": {"limit": {"maximum": 50}},
        "rate_limit_per_minute": None,
        "valid_from": None,
        "valid_until": None,
    }


def test_card_of_an_agent_without_role_or_grants(viewer_api):
    agent = AgentFactory(description="")
    card = viewer_api.get(f"{AGENTS}/{agent.pk}/card").json()
    assert card["description"] == agent.name
    assert card["skills"] == []
    assert card["supportedInterfaces"] == []
    params = card["capabilities"]["extensions"][0]["params"]
    assert (params["role"], params["authority"], params["status"]) == (None, [], "draft")


def test_history_lists_the_agents_changes_newest_first(admin_api, actor):
    agent = AgentFactory()
    services.agent_transition(actor=actor, agent=agent, to=AgentStatus.ACTIVE)
    GrantFactory(agent=agent)

    response = admin_api.get(f"{AGENTS}/{agent.pk}/history")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    actions = [item["action"] for item in body["results"]]
    assert actions == ["grant.added", "agent.status_changed", "agent.created"]
    status_change = body["results"][1]
    assert status_change["actor"] == {"kind": "system", "id": "test", "label": actor.label}
    assert status_change["before"]["status"] == "draft"
    assert status_change["after"]["status"] == "active"
    assert "status" in status_change["changed_fields"]


# Filtering and pagination ------------------------------------------------------------------


@pytest.fixture
def fleet():
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    analyst = RoleFactory(slug="analyst")
    return {
        "triage": AgentFactory(
            slug="triage",
            name="Alert triage",
            owner=alice,
            role=analyst,
            risk_tier=RiskTier.LOW,
            model_kind=ModelKind.SLM,
            status=AgentStatus.ACTIVE,
        ),
        "payer": AgentFactory(
            slug="payer",
            name="Payments",
            owner=bob,
            risk_tier=RiskTier.CRITICAL,
            description="Moves money between accounts.",
            status=AgentStatus.SUSPENDED,
        ),
        "writer": AgentFactory(
            slug="writer", name="Case writer", owner=alice, role=analyst, team="Fraud ops", risk_tier=RiskTier.HIGH
        ),
    }


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"triage", "payer", "writer"}),
        ("status=active", {"triage"}),
        ("status=active&status=suspended", {"triage", "payer"}),
        ("risk_tier=critical", {"payer"}),
        ("risk_tier=low&risk_tier=high", {"triage", "writer"}),
        ("role=analyst", {"triage", "writer"}),
        ("owner=alice", {"triage", "writer"}),
        ("owner=bob&status=suspended", {"payer"}),
        ("model_kind=slm", {"triage"}),
        ("model_kind=llm", {"payer", "writer"}),
        ("q=money", {"payer"}),
        ("q=fraud", {"writer"}),
        ("q=TRIAGE", {"triage"}),
        ("q=nothing-matches", set()),
        ("team=fraud%20ops", {"writer"}),
    ],
)
def test_filter_agents(admin_api, fleet, query, expected):
    response = admin_api.get(f"{AGENTS}?{query}")
    assert response.status_code == 200
    assert {item["slug"] for item in response.json()["results"]} == expected


def test_invalid_filter_value_is_400(admin_api, fleet):
    body = assert_error(admin_api.get(f"{AGENTS}?status=sleeping"), 400, "invalid")
    assert "status" in body["detail"]


def test_ordering(admin_api, fleet):
    names = [item["name"] for item in admin_api.get(f"{AGENTS}?ordering=-name").json()["results"]]
    assert names == ["Payments", "Case writer", "Alert triage"]


def test_pagination(admin_api):
    for index in range(5):
        AgentFactory(name=f"Agent {index}")
    first = admin_api.get(f"{AGENTS}?page_size=2").json()
    assert first["count"] == 5
    assert [item["name"] for item in first["results"]] == ["Agent 0", "Agent 1"]
    assert first["next"] is not None
    assert first["previous"] is None
    last = admin_api.get(f"{AGENTS}?page_size=2&page=3").json()
    assert [item["name"] for item in last["results"]] == ["Agent 4"]
    assert last["next"] is None


def test_page_out_of_range_is_a_json_404(admin_api):
    AgentFactory()
    assert_error(admin_api.get(f"{AGENTS}?page=2"), 404, "not_found")
    assert_error(admin_api.get(f"{AGENTS}?page=zero"), 404, "not_found")


def test_page_size_is_capped(admin_api):
    AgentFactory()
    response = admin_api.get(f"{AGENTS}?page_size=100000")
    assert response.status_code == 200
    assert response.json()["count"] == 1


def test_unknown_and_malformed_agent_ids_are_404(admin_api):
    assert_error(admin_api.get(f"{AGENTS}/{uuid.uuid4()}"), 404, "not_found")
    assert_error(admin_api.get(f"{AGENTS}/not-a-uuid"), 404, "not_found")
    assert_error(
        admin_api.post(f"{AGENTS}/{uuid.uuid4()}/status", {"status": "active"}, format="json"), 404, "not_found"
    )
    assert_error(admin_api.get(f"{AGENTS}/{uuid.uuid4()}/card"), 404, "not_found")


def test_failed_write_leaves_no_record(admin_api, owner):
    before = ChangeRecord.objects.count()
    admin_api.post(AGENTS, _payload(owner, scope={"bad": True}), format="json")
    assert ChangeRecord.objects.count() == before
