"""Who may do what through the API: authentication and Warden's groups."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from core.testing import assert_error
from registry import services
from registry.choices import AgentStatus
from registry.models import Agent, Role
from registry.tests.factories import PASSWORD, AgentFactory, GrantFactory, RoleFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_tools")]

LISTS = ["/api/v1/agents", "/api/v1/roles", "/api/v1/grants", "/api/v1/credentials"]


@pytest.fixture
def objects(actor):
    """One of each registry object, for detail URLs."""
    role = RoleFactory()
    agent = AgentFactory(role=role, status=AgentStatus.ACTIVE)
    grant = GrantFactory(agent=agent)
    credential = services.credential_issue(actor=actor, agent=agent).credential
    return {"agent": agent, "role": role, "grant": grant, "credential": credential}


def _reads(objects):
    agent = objects["agent"]
    return [
        *LISTS,
        f"/api/v1/agents/{agent.pk}",
        f"/api/v1/agents/{agent.pk}/card",
        f"/api/v1/agents/{agent.pk}/history",
        f"/api/v1/agents/{agent.pk}/credentials",
        f"/api/v1/roles/{objects['role'].pk}",
        f"/api/v1/grants/{objects['grant'].pk}",
        f"/api/v1/credentials/{objects['credential'].pk}",
    ]


def _writes(objects):
    """(method, url, body) for every kind of write, each valid for an admin."""
    agent, credential = objects["agent"], objects["credential"]
    return [
        ("post", "/api/v1/agents", {"slug": "new", "name": "New", "owner": agent.owner.username, "model_name": "m"}),
        ("patch", f"/api/v1/agents/{agent.pk}", {"team": "Ops"}),
        ("post", f"/api/v1/agents/{agent.pk}/status", {"status": "suspended"}),
        ("post", f"/api/v1/agents/{agent.pk}/credentials", {"name": "ci"}),
        ("post", "/api/v1/roles", {"slug": "r", "name": "R"}),
        ("patch", f"/api/v1/roles/{objects['role'].pk}", {"description": "d"}),
        ("post", "/api/v1/grants", {"agent": agent.slug, "tool": "crm.read", "reason": "x"}),
        ("patch", f"/api/v1/grants/{objects['grant'].pk}", {"rate_limit_per_minute": 1}),
        ("delete", f"/api/v1/grants/{objects['grant'].pk}", None),
        ("post", f"/api/v1/credentials/{credential.pk}/rotate", {}),
        ("post", f"/api/v1/credentials/{credential.pk}/revoke", {}),
    ]


def test_anonymous_gets_401_with_a_challenge(anon_api, objects):
    for url in _reads(objects):
        response = anon_api.get(url)
        assert_error(response, 401, "not_authenticated")
        assert response["WWW-Authenticate"].startswith("Basic"), url
    for method, url, body in _writes(objects):
        response = getattr(anon_api, method)(url, body, format="json")
        assert_error(response, 401, "not_authenticated")
        assert "WWW-Authenticate" in response


@pytest.mark.parametrize("client_name", ["viewer_api", "approver_api"])
def test_readers_can_read_but_not_write(request, objects, client_name):
    client = request.getfixturevalue(client_name)
    for url in _reads(objects):
        assert client.get(url).status_code == 200, url
    for method, url, body in _writes(objects):
        assert_error(getattr(client, method)(url, body, format="json"), 403, "permission_denied")
    agent = Agent.objects.get(pk=objects["agent"].pk)
    assert (agent.status, agent.team) == (AgentStatus.ACTIVE, "")
    assert objects["credential"].__class__.objects.get(pk=objects["credential"].pk).state() == "active"
    assert not Role.objects.filter(slug="r").exists()


@pytest.mark.parametrize("client_name", ["groupless_api", "non_staff_api"])
def test_users_without_a_group_or_staff_status_see_nothing(request, objects, client_name):
    client = request.getfixturevalue(client_name)
    for url in _reads(objects):
        assert_error(client.get(url), 403, "permission_denied")
    for method, url, body in _writes(objects):
        assert_error(getattr(client, method)(url, body, format="json"), 403, "permission_denied")


def test_inactive_admin_is_refused(warden_admin, objects):
    warden_admin.is_active = False
    warden_admin.save()
    client = APIClient()
    client.force_authenticate(warden_admin)
    assert_error(client.get("/api/v1/agents"), 403, "permission_denied")


@pytest.mark.parametrize("client_name", ["admin_api", "superuser_api"])
def test_admins_can_do_everything(request, objects, client_name):
    client = request.getfixturevalue(client_name)
    for url in _reads(objects):
        assert client.get(url).status_code == 200, url
    for method, url, body in _writes(objects):
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code in (200, 201, 204), (method, url, response.content)


def test_real_http_basic_authentication(warden_admin):
    AgentFactory()
    client = APIClient()
    token = base64.b64encode(f"{warden_admin.username}:{PASSWORD}".encode()).decode()
    response = client.get("/api/v1/agents", HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 200
    assert response.json()["count"] == 1

    wrong = base64.b64encode(f"{warden_admin.username}:wrong".encode()).decode()
    response = client.get("/api/v1/agents", HTTP_AUTHORIZATION=f"Basic {wrong}")
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"].startswith("Basic")


def test_real_session_authentication_with_csrf(warden_admin):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username=warden_admin.username, password=PASSWORD)
    assert client.get("/api/v1/roles").status_code == 200

    # A session-authenticated write needs the CSRF token, like any browser form.
    refused = client.post("/api/v1/roles", {"slug": "r", "name": "R"}, format="json")
    assert_error(refused, 403, "permission_denied")
    assert not Role.objects.exists()

    client.get("/admin/")  # the admin page (its logout form) sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/roles", {"slug": "r", "name": "R"}, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content
    assert Role.objects.filter(slug="r").exists()


def test_viewer_may_list_keys_but_not_issue_them(viewer_api, objects):
    agent = objects["agent"]
    listed = viewer_api.get(f"/api/v1/agents/{agent.pk}/credentials")
    assert listed.status_code == 200
    assert listed.json()["count"] == 1
    assert_error(viewer_api.post(f"/api/v1/agents/{agent.pk}/credentials", {}, format="json"), 403, "permission_denied")
    assert agent.credentials.count() == 1
