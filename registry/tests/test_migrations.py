"""Data migration 0002: Warden's groups and their permissions on registry models."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group

from core.groups import ALL_GROUPS, APPROVERS, VIEWERS, WARDEN_ADMINS

pytestmark = pytest.mark.django_db

MODELS = {"agent", "role", "tool", "grant", "credential", "changerecord"}
migration = importlib.import_module("registry.migrations.0002_create_groups")


def _registry_codenames(name: str) -> set[str]:
    group = Group.objects.get(name=name)
    return set(group.permissions.filter(content_type__app_label="registry").values_list("codename", flat=True))


def test_registry_models_are_the_expected_ones():
    assert {model._meta.model_name for model in django_apps.get_app_config("registry").get_models()} == MODELS


def test_groups_exist_with_their_permissions():
    assert set(Group.objects.filter(name__in=ALL_GROUPS).values_list("name", flat=True)) == set(ALL_GROUPS)
    assert _registry_codenames(WARDEN_ADMINS) == {
        f"{action}_{model}" for action in ("view", "add", "change", "delete") for model in MODELS
    }
    for name in (APPROVERS, VIEWERS):
        assert _registry_codenames(name) == {f"view_{model}" for model in MODELS}


def test_group_members_get_the_permissions(viewer, warden_admin):
    assert viewer.has_perm("registry.view_agent")
    assert not viewer.has_perm("registry.change_agent")
    assert not viewer.has_perm("registry.add_credential")
    assert warden_admin.has_perms(["registry.add_credential", "registry.change_agent", "registry.delete_role"])


def test_reverse_removes_and_forward_restores_the_permissions(monkeypatch):
    # The migration marks the app config it is given as having models; restore the real one after.
    registry_config = django_apps.get_app_config("registry")
    monkeypatch.setattr(registry_config, "models_module", registry_config.models_module)
    migration.remove_permissions(django_apps, None)
    for name in ALL_GROUPS:
        assert _registry_codenames(name) == set()
    # The groups themselves stay (other apps grant into them).
    assert Group.objects.filter(name__in=ALL_GROUPS).count() == len(ALL_GROUPS)

    migration.create_groups(django_apps, None)
    migration.create_groups(django_apps, None)  # idempotent
    assert len(_registry_codenames(WARDEN_ADMINS)) == 4 * len(MODELS)
    assert _registry_codenames(VIEWERS) == {f"view_{model}" for model in MODELS}
