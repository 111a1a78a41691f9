"""Triggers that NOTIFY `racefree_auth` when a token, a user, a group membership or a
permission changes: every process's token cache (core/token_auth.py) forgets what it knew.
PostgreSQL only (the embedded SQLite demo fallback has no NOTIFY and no cache)."""

from django.conf import settings
from django.db import migrations

FUNCTION = "racefree_notify_auth_changed"


def _tables(apps):
    user = apps.get_model(settings.AUTH_USER_MODEL)
    group = apps.get_model("auth", "Group")
    token = apps.get_model("authtoken", "Token")
    return [
        token._meta.db_table,
        user._meta.db_table,
        user._meta.get_field("groups").remote_field.through._meta.db_table,
        user._meta.get_field("user_permissions").remote_field.through._meta.db_table,
        group._meta.get_field("permissions").remote_field.through._meta.db_table,
    ]


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN PERFORM pg_notify('racefree_auth', TG_TABLE_NAME); RETURN NULL; END $$"
    )
    for table in _tables(apps):
        schema_editor.execute(
            f'CREATE TRIGGER racefree_auth_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE '
            f'ON "{table}" FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()'
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in _tables(apps):
        schema_editor.execute(f'DROP TRIGGER IF EXISTS racefree_auth_changed ON "{table}"')
    schema_editor.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")


class Migration(migrations.Migration):
    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]
    operations = [migrations.RunPython(create, drop)]
