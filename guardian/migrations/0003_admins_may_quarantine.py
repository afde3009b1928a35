"""Warden admins may quarantine an agent by hand (the dashboards' agent page), as guardians do."""

from django.db import migrations

from core.groups import WARDEN_ADMINS


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins = Group.objects.get(name=WARDEN_ADMINS)
    admins.permissions.add(*Permission.objects.filter(content_type__app_label="guardian", codename="add_quarantine"))


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins = Group.objects.get(name=WARDEN_ADMINS)
    admins.permissions.remove(*Permission.objects.filter(content_type__app_label="guardian", codename="add_quarantine"))


class Migration(migrations.Migration):
    dependencies = [("guardian", "0002_group_permissions")]

    operations = [migrations.RunPython(grant, revoke)]
