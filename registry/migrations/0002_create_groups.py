"""Create Warden's groups and give them their permissions on registry models.

warden-admins: everything; approvers and viewers: read-only (approvers get their own
permissions from the approvals app later).
"""

from django.db import migrations

from core.groups import APPROVERS, VIEWERS, WARDEN_ADMINS, grant_model_permissions, revoke_model_permissions

GRANTS = {
    WARDEN_ADMINS: ("view", "add", "change", "delete"),
    APPROVERS: ("view",),
    VIEWERS: ("view",),
}


def create_groups(apps, schema_editor):
    grant_model_permissions(apps, "registry", GRANTS)


def remove_permissions(apps, schema_editor):
    revoke_model_permissions(apps, "registry")


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_permissions)]
