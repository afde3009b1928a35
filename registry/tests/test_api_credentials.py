"""Keys through the API: issued once with no-store, never shown again, rotated, revoked."""

from __future__ import annotations

import re

import pytest

from core.actors import Actor
from core.errors import AuthenticationFailed
from core.testing import assert_change_record, assert_error
from registry import services
from registry.choices import AgentStatus, ChangeAction
from registry.models import Credential
from registry.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

KEY = re.compile(r"^wdn_[a-z0-9]{12}_[A-Za-z0-9]{40}$")


def _issue(client, agent, **body):
    return client.post(f"/api/v1/agents/{agent.pk}/credentials", body, format="json")


def test_issue_shows_the_key_once_and_never_again(admin_api, warden_admin):
    agent = AgentFactory(slug="payer", status=AgentStatus.ACTIVE)

    response = _issue(admin_api, agent, name="production", expires_at="2099-01-01T00:00:00Z")

    assert response.status_code == 201, response.json()
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    key = body["key"]
    assert KEY.match(key)
    assert (body["agent"], body["name"], body["state"], body["created_by"]) == (
        "payer",
        "production",
        "active",
        warden_admin.username,
    )
    assert body["expires_at"].startswith("2099-01-01")
    assert key.startswith(f"wdn_{body['prefix']}_")
    assert "secret_hash" not in body
    credential = Credential.objects.get(pk=body["id"])
    assert services.credential_authenticate(key).pk == credential.pk
    assert_change_record(credential, ChangeAction.CREDENTIAL_ISSUED, actor=Actor.from_user(warden_admin))

    for url in (
        f"/api/v1/credentials/{credential.pk}",
        "/api/v1/credentials",
        f"/api/v1/agents/{agent.pk}/credentials",
        f"/api/v1/agents/{agent.pk}/history",
        f"/api/v1/agents/{agent.pk}",
    ):
        later = admin_api.get(url)
        assert later.status_code == 200
        assert key not in later.content.decode(), url
        assert key.rsplit("_", 1)[1] not in later.content.decode(), url
        assert credential.secret_hash not in later.content.decode(), url


def test_issue_input_is_validated(admin_api):
    agent = AgentFactory()
    body = assert_error(_issue(admin_api, agent, expires_at="2000-01-01T00:00:00Z"), 400, "invalid")
    assert "expires_at" in body["detail"]
    body = assert_error(_issue(admin_api, agent, scope="all"), 400, "invalid")
    assert body["detail"] == {"scope": ["Unknown field."]}
    assert not Credential.objects.exists()


def test_issue_to_a_retired_agent_is_a_conflict(admin_api):
    agent = AgentFactory(status=AgentStatus.RETIRED)
    assert_error(_issue(admin_api, agent), 409, "conflict")


def test_list_credentials_of_an_agent(admin_api, actor):
    agent, other = AgentFactory(), AgentFactory(slug="other")
    services.credential_issue(actor=actor, agent=agent, name="one")
    services.credential_issue(actor=actor, agent=other, name="two")
    body = admin_api.get(f"/api/v1/agents/{agent.pk}/credentials").json()
    assert [item["name"] for item in body["results"]] == ["one"]
    assert "key" not in body["results"][0]
    assert [item["name"] for item in admin_api.get("/api/v1/credentials?agent__slug=other").json()["results"]] == [
        "two"
    ]


def test_rotate(admin_api, warden_admin, actor):
    old = services.credential_issue(actor=actor, agent=AgentFactory(), name="prod")

    response = admin_api.post(f"/api/v1/credentials/{old.credential.pk}/rotate", {}, format="json")

    assert response.status_code == 201, response.json()
    assert response["Cache-Control"] == "no-store"
    new_key = response.json()["key"]
    assert KEY.match(new_key)
    assert response.json()["name"] == "prod"
    assert str(services.credential_authenticate(new_key).pk) == response.json()["id"]
    with pytest.raises(AuthenticationFailed):
        services.credential_authenticate(old.key)
    assert_change_record(old.credential, ChangeAction.CREDENTIAL_ROTATED, actor=Actor.from_user(warden_admin))
    # The old key is revoked, so it cannot be rotated again.
    assert_error(admin_api.post(f"/api/v1/credentials/{old.credential.pk}/rotate", {}, format="json"), 409, "conflict")


def test_rotate_with_grace(admin_api, actor):
    old = services.credential_issue(actor=actor, agent=AgentFactory())
    response = admin_api.post(f"/api/v1/credentials/{old.credential.pk}/rotate", {"grace_seconds": 600}, format="json")
    assert response.status_code == 201
    assert services.credential_authenticate(old.key).pk == old.credential.pk
    assert services.credential_authenticate(response.json()["key"])


def test_rotate_input_is_validated(admin_api, actor):
    old = services.credential_issue(actor=actor, agent=AgentFactory())
    url = f"/api/v1/credentials/{old.credential.pk}/rotate"
    assert (
        "grace_seconds"
        in assert_error(admin_api.post(url, {"grace_seconds": -1}, format="json"), 400, "invalid")["detail"]
    )
    assert_error(admin_api.post(url, {"grace_seconds": 10**9}, format="json"), 400, "invalid")
    assert Credential.objects.count() == 1


def test_revoke(admin_api, warden_admin, actor):
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    response = admin_api.post(
        f"/api/v1/credentials/{issued.credential.pk}/revoke", {"reason": "Leaked in CI logs."}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["revoked_reason"]) == ("revoked", "Leaked in CI logs.")
    assert "key" not in body
    with pytest.raises(AuthenticationFailed):
        services.credential_authenticate(issued.key)
    record = assert_change_record(
        issued.credential, ChangeAction.CREDENTIAL_REVOKED, actor=Actor.from_user(warden_admin)
    )
    assert record.reason == "Leaked in CI logs."
    # Revoking again changes nothing and records nothing.
    assert admin_api.post(f"/api/v1/credentials/{issued.credential.pk}/revoke", {}, format="json").status_code == 200
    assert_change_record(issued.credential, ChangeAction.CREDENTIAL_REVOKED, count=1)


def test_credentials_cannot_be_created_or_deleted_directly(admin_api, actor):
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    assert_error(admin_api.post("/api/v1/credentials", {}, format="json"), 405, "method_not_allowed")
    assert_error(admin_api.delete(f"/api/v1/credentials/{issued.credential.pk}"), 405, "method_not_allowed")
    assert_error(
        admin_api.patch(f"/api/v1/credentials/{issued.credential.pk}", {}, format="json"), 405, "method_not_allowed"
    )
