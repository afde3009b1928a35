"""Human least privilege: the Django groups Warden creates and the permissions they hold.

Used from data migrations (each app's migration grants its own models' permissions), so
groups are created by `migrate` on every installation, never by hand.
"""

from __future__ import annotations

from typing import Any

WARDEN_ADMINS = "warden-admins"
APPROVERS = "approvers"
VIEWERS = "viewers"
AUDITORS = "auditors"  # read and verify the audit trail, export it; change nothing
ALL_GROUPS = (WARDEN_ADMINS, APPROVERS, VIEWERS, AUDITORS)


def grant_model_permissions(apps: Any, app_label: str, grants: dict[str, tuple[str, ...]]) -> None:
    """Give each named group the listed actions (`view`, `add`, ...) on every model of an app.

    Permissions are normally created after migrations run; they are created here first so a
    fresh database gets complete groups in a single `migrate`.
    """
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config(app_label)
    app_config.models_module = True  # migration state stubs lack it; create_permissions needs it
    create_permissions(app_config, apps=apps, verbosity=0)

    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    content_type_model = apps.get_model("contenttypes", "ContentType")
    model_names = [model._meta.model_name for model in app_config.get_models()]
    content_types = content_type_model.objects.filter(app_label=app_label, model__in=model_names)
    for group_name, actions in grants.items():
        group, _ = group_model.objects.get_or_create(name=group_name)
        codenames = [f"{action}_{name}" for action in actions for name in model_names]
        permissions = permission_model.objects.filter(content_type__in=content_types, codename__in=codenames)
        group.permissions.add(*permissions)


def revoke_model_permissions(apps: Any, app_label: str) -> None:
    """Reverse of `grant_model_permissions`: drop the app's permissions from Warden's groups."""
    group_model = apps.get_model("auth", "Group")
    for group in group_model.objects.filter(name__in=ALL_GROUPS):
        group.permissions.remove(*group.permissions.filter(content_type__app_label=app_label))
