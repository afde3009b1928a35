"""Auditors read tool calls, contracts and rules (the subjects of the audit trail)."""

from django.db import migrations

from core.groups import AUDITORS, grant_model_permissions


def grant(apps, schema_editor):
    grant_model_permissions(apps, "policy", {AUDITORS: ("view",)})


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for group in Group.objects.filter(name=AUDITORS):
        group.permissions.remove(*group.permissions.filter(content_type__app_label="policy"))


class Migration(migrations.Migration):
    dependencies = [("policy", "0002_group_permissions"), ("audit", "0002_append_only_triggers_and_auditors")]

    operations = [migrations.RunPython(grant, revoke)]
