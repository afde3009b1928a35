"""Register a tool for every tool name existing grants use, before grants refer to tools by key.

Such tools are marked for review: their side effect is unknown, so they are registered as
`write` with `high` default risk and a description saying where they came from. Also gives
Warden's groups their permissions on the new Tool model.
"""

from django.db import migrations

from core.groups import APPROVERS, VIEWERS, WARDEN_ADMINS, grant_model_permissions

GRANTS = {
    WARDEN_ADMINS: ("view", "add", "change", "delete"),
    APPROVERS: ("view",),
    VIEWERS: ("view",),
}


def register_tools(apps, schema_editor):
    grant_model = apps.get_model("registry", "Grant")
    tool_model = apps.get_model("registry", "Tool")
    for name in grant_model.objects.values_list("tool", flat=True).distinct():
        tool_model.objects.get_or_create(
            name=name,
            defaults={
                "side_effect": "write",
                "default_risk": "high",
                "description": "Registered automatically from an existing grant; review its side effect and risk.",
            },
        )
    grant_model_permissions(apps, "registry", GRANTS)


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_tools_and_agent_limits"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    # Reversing keeps the tools: the previous schema simply ignores them.
    operations = [migrations.RunPython(register_tools, migrations.RunPython.noop)]
