"""Health probes: /healthz (the process) and /readyz (the database)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.utils import OperationalError

from core.testing import response_json


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response_json(response) == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_is_get_only(client):
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_checks_the_database(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response_json(response) == {"status": "ok", "checks": {"database": {"ok": True}}}


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_fails(client, monkeypatch):
    def broken_cursor(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "cursor", broken_cursor)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response_json(response) == {
        "status": "unavailable",
        "checks": {"database": {"ok": False, "error": "OperationalError"}},
    }
