"""Give Warden's groups their permissions on approvals.

approvers read the queue and decide (`decide_approval`); viewers, auditors and warden-admins
read it. Nobody adds, changes or deletes approvals, votes or deliveries by hand: the services
write them, each step with an audit record.
"""

from django.db import migrations

from core.groups import APPROVERS, AUDITORS, VIEWERS, WARDEN_ADMINS, grant_model_permissions, revoke_model_permissions


def grant(apps, schema_editor):
    grant_model_permissions(
        apps, "approvals", {APPROVERS: ("view",), VIEWERS: ("view",), AUDITORS: ("view",), WARDEN_ADMINS: ("view",)}
    )
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    decide = Permission.objects.get(content_type__app_label="approvals", codename="decide_approval")
    Group.objects.get(name=APPROVERS).permissions.add(decide)


def revoke(apps, schema_editor):
    revoke_model_permissions(apps, "approvals")


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("registry", "0006_auditors_read_the_registry"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
