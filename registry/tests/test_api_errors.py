"""Every API error is JSON {"code", "message", "detail"} with the right status, never HTML."""

from __future__ import annotations

import pytest
from django.test import override_settings

from core.testing import assert_error
from registry.models import Agent, Role
from registry.tests.factories import AgentFactory, RoleFactory

pytestmark = pytest.mark.django_db


def _agent_payload(owner, **fields):
    return {"slug": "a", "name": "A", "owner": owner.username, "model_name": "m", **fields}


def test_400_invalid_field(admin_api, owner):
    response = admin_api.post("/api/v1/agents", _agent_payload(owner, risk_tier="extreme"), format="json")
    body = assert_error(response, 400, "invalid")
    assert list(body["detail"]) == ["risk_tier"]
    assert isinstance(body["detail"]["risk_tier"], list)


def test_400_missing_fields(admin_api):
    body = assert_error(admin_api.post("/api/v1/agents", {}, format="json"), 400, "invalid")
    assert {"slug", "name", "owner", "model_name"} <= set(body["detail"])


def test_400_unknown_field(admin_api, owner):
    response = admin_api.post("/api/v1/agents", _agent_payload(owner, risk_teir="high"), format="json")
    body = assert_error(response, 400, "invalid")
    assert body["detail"] == {"risk_teir": ["Unknown field."]}
    assert not Agent.objects.exists()


def test_400_unknown_field_on_update(admin_api):
    role = RoleFactory()
    body = assert_error(admin_api.patch(f"/api/v1/roles/{role.pk}", {"colour": "red"}, format="json"), 400, "invalid")
    assert body["detail"] == {"colour": ["Unknown field."]}


@pytest.mark.parametrize("raw", [b'{"slug": ', b"{'slug': 'x'}", b'{"depth": NaN}', b"\xff\xfe"])
def test_400_malformed_json(admin_api, raw):
    response = admin_api.generic("POST", "/api/v1/roles", raw, content_type="application/json")
    body = assert_error(response, 400, "malformed")
    assert body["detail"] == {}
    assert not Role.objects.exists()


def test_400_body_that_is_not_an_object(admin_api):
    response = admin_api.generic("POST", "/api/v1/roles", b"[1, 2]", content_type="application/json")
    body = assert_error(response, 400, "invalid")
    assert "non_field_errors" in body["detail"]


def test_401_and_403_shapes(anon_api, viewer_api):
    assert_error(anon_api.get("/api/v1/agents"), 401, "not_authenticated")
    assert_error(viewer_api.post("/api/v1/roles", {"slug": "r", "name": "R"}, format="json"), 403, "permission_denied")


def test_404_unknown_object(admin_api):
    assert_error(admin_api.get("/api/v1/roles/00000000-0000-0000-0000-000000000000"), 404, "not_found")


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/agents/x/y/z", "/api/v2/agents", "/api/"])
def test_404_unknown_api_path_is_json(admin_api, anon_api, path):
    assert_error(admin_api.get(path), 404, "not_found")
    assert_error(anon_api.get(path), 404, "not_found")


def test_404_outside_the_api_stays_html(admin_client_su):
    response = admin_client_su.get("/nope")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_405(admin_api):
    agent = AgentFactory()
    body = assert_error(admin_api.delete(f"/api/v1/agents/{agent.pk}"), 405, "method_not_allowed")
    assert "DELETE" in body["message"]
    assert_error(admin_api.put("/api/v1/agents", {}, format="json"), 405, "method_not_allowed")


def test_409_illegal_transition(admin_api):
    agent = AgentFactory()
    response = admin_api.post(f"/api/v1/agents/{agent.pk}/status", {"status": "suspended"}, format="json")
    body = assert_error(response, 409, "illegal_transition")
    assert body["detail"]["allowed"] == ["active", "retired"]


def test_409_deleting_a_role_in_use(admin_api):
    role = RoleFactory()
    agent = AgentFactory(role=role)
    body = assert_error(admin_api.delete(f"/api/v1/roles/{role.pk}"), 409, "conflict")
    assert body["detail"] == {"agents": [agent.slug]}
    assert Role.objects.filter(pk=role.pk).exists()


def test_413_body_over_the_limit(admin_api):
    with override_settings(WARDEN={"API_MAX_REQUEST_BYTES": 100}):
        response = admin_api.post("/api/v1/roles", {"slug": "r", "name": "R", "description": "x" * 200}, format="json")
        body = assert_error(response, 413, "request_too_large")
        assert body["detail"] == {"limit_bytes": 100}
        # A body under the limit still works.
        assert admin_api.post("/api/v1/roles", {"slug": "r", "name": "R"}, format="json").status_code == 201
    assert Role.objects.count() == 1


def test_415_unsupported_media_type(admin_api):
    response = admin_api.post("/api/v1/roles", {"slug": "r", "name": "R"})  # multipart form
    assert_error(response, 415, "unsupported_media_type")


def test_validation_errors_from_the_model_name_fields(admin_api):
    AgentFactory(slug="taken")
    role = RoleFactory(slug="taken-role")
    body = assert_error(
        admin_api.post("/api/v1/roles", {"slug": role.slug, "name": "X"}, format="json"), 400, "invalid"
    )
    assert "slug" in body["detail"]
