"""Give Warden's groups their permissions on guardians.

warden-admins configure guardians (view, add, change; never delete: disable instead) and may
release quarantined agents; approvers, viewers and auditors read guardians, assessments,
scores, quarantines and baselines. Nobody writes assessments, scores or quarantines by hand.
"""

from django.db import migrations

from core.groups import APPROVERS, AUDITORS, VIEWERS, WARDEN_ADMINS, grant_model_permissions, revoke_model_permissions


def grant(apps, schema_editor):
    grant_model_permissions(
        apps,
        "guardian",
        {APPROVERS: ("view",), VIEWERS: ("view",), AUDITORS: ("view",), WARDEN_ADMINS: ("view",)},
    )
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    admins = Group.objects.get(name=WARDEN_ADMINS)
    admins.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="guardian",
            codename__in=["add_guardian", "change_guardian", "release_quarantine"],
        )
    )


def revoke(apps, schema_editor):
    revoke_model_permissions(apps, "guardian")


class Migration(migrations.Migration):
    dependencies = [
        ("guardian", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("approvals", "0002_group_permissions"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
