"""PostgreSQL refuses UPDATE and DELETE on the audit tables; the auditors group may read them.

The triggers stop the application's own database role and anyone using it; a superuser can
still switch them off (`session_replication_role = replica`), which is why the trail is also
sealed and verified: `audit_verify` finds what such a person changed. TRUNCATE is not
trapped (test suites empty tables with it); the database role Warden runs as should not own
the tables in production.
"""

from django.db import migrations

from core.groups import AUDITORS, WARDEN_ADMINS, grant_model_permissions, revoke_model_permissions

TABLES = ("audit_auditrecord", "audit_block", "audit_seal")

CREATE = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'The audit trail is append-only: % on % refused.', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END $$;
"""


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(CREATE, params=None)  # no placeholders: `%` belongs to RAISE
    for table in TABLES:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in TABLES:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")


def grant(apps, schema_editor):
    grant_model_permissions(apps, "audit", {WARDEN_ADMINS: ("view",), AUDITORS: ("view",)})


def revoke(apps, schema_editor):
    revoke_model_permissions(apps, "audit")


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(create_triggers, drop_triggers),
        migrations.RunPython(grant, revoke),
    ]
