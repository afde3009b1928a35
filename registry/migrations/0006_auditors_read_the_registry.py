"""Auditors read the registry (agents, roles, grants, keys' metadata, change history)."""

from django.db import migrations

from core.groups import AUDITORS, grant_model_permissions


def grant(apps, schema_editor):
    grant_model_permissions(apps, "registry", {AUDITORS: ("view",)})


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name=AUDITORS):
        group.permissions.remove(*group.permissions.filter(content_type__app_label="registry"))


class Migration(migrations.Migration):
    dependencies = [("registry", "0005_grants_refer_to_tools"), ("audit", "0002_append_only_triggers_and_auditors")]

    operations = [migrations.RunPython(grant, revoke)]
