from django.db import migrations


def create_sequence(apps, schema_editor):
    # PostgreSQL only; the embedded SQLite fallback numbers applications itself.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS writes_apply_seq")


def drop_sequence(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS writes_apply_seq")


class Migration(migrations.Migration):
    dependencies = [("writes", "0001_initial")]

    operations = [migrations.RunPython(create_sequence, drop_sequence)]
