"""Create the policy version counter, so every change bumps an existing row (no insert race)."""

from django.db import migrations


def create_counter(apps, schema_editor):
    apps.get_model("core", "Revision").objects.get_or_create(name="policy", defaults={"value": 0})


def remove_counter(apps, schema_editor):
    apps.get_model("core", "Revision").objects.filter(name="policy").delete()


class Migration(migrations.Migration):
    dependencies = [("core", "0001_policy_revision")]

    operations = [migrations.RunPython(create_counter, remove_counter)]
