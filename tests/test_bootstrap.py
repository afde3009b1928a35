"""`manage.py warden_bootstrap`: the first admin and the demo registry, safe to re-run."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from core.groups import WARDEN_ADMINS
from registry.choices import AgentStatus
from registry.models import Agent, ChangeRecord

pytestmark = pytest.mark.django_db


def _bootstrap(**options) -> str:
    out = io.StringIO()
    call_command("warden_bootstrap", stdout=out, **options)
    return out.getvalue()


def test_generated_password_is_printed_once_and_works(monkeypatch):
    monkeypatch.delenv("WARDEN_ADMIN_PASSWORD", raising=False)
    first = _bootstrap()
    password = next(line.split(":", 1)[1].strip() for line in first.splitlines() if "password:" in line)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.check_password(password)
    assert admin.groups.filter(name=WARDEN_ADMINS).exists()

    second = _bootstrap()
    assert password not in second
    assert "exists" in second


def test_password_from_environment(monkeypatch):
    monkeypatch.setenv("WARDEN_ADMIN_PASSWORD", "correct-horse-battery")
    output = _bootstrap()
    assert "correct-horse-battery" not in output
    assert get_user_model().objects.get(username="admin").check_password("correct-horse-battery")


def test_demo_registry_is_loaded_once_through_services(monkeypatch):
    monkeypatch.setenv("WARDEN_ADMIN_PASSWORD", "correct-horse-battery")
    _bootstrap(demo=True)
    agents = Agent.objects.count()
    records = ChangeRecord.objects.count()
    assert agents == 6  # the demo fleet and its guardian
    assert Agent.objects.filter(status=AgentStatus.ACTIVE).count() == 5
    assert Agent.objects.get(slug="fleet-guardian").guardian_profile.enabled
    assert Agent.objects.get(slug="alert-triage").supervisor.slug == "aml-orchestrator"
    assert not ChangeRecord.objects.filter(action="model.saved_outside_service").exists()

    _bootstrap(demo=True)
    assert Agent.objects.count() == agents
    assert ChangeRecord.objects.count() == records
