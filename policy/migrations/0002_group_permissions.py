"""Give Warden's groups their permissions on policy models.

warden-admins manage contracts and rules and read tool calls (tool calls are written by the
decision path only; the admin never adds, changes or deletes them); approvers and viewers read.
"""

from django.db import migrations

from core.groups import APPROVERS, VIEWERS, WARDEN_ADMINS, grant_model_permissions, revoke_model_permissions

GRANTS = {
    WARDEN_ADMINS: ("view", "add", "change", "delete"),
    APPROVERS: ("view",),
    VIEWERS: ("view",),
}


def grant(apps, schema_editor):
    grant_model_permissions(apps, "policy", GRANTS)


def revoke(apps, schema_editor):
    revoke_model_permissions(apps, "policy")


class Migration(migrations.Migration):
    dependencies = [
        ("policy", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
