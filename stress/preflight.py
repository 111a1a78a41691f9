"""Checks the load tools run before starting anything: a clear error instead of a traceback."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, OperationalError, connections
from django.db.migrations.executor import MigrationExecutor


def require_migrated_database(alias: str = DEFAULT_DB_ALIAS) -> None:
    """Raise CommandError if the database is unreachable or has unapplied migrations."""
    connection = connections[alias]
    try:
        executor = MigrationExecutor(connection)
        unapplied = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except OperationalError as exc:
        name = connection.settings_dict.get("NAME")
        raise CommandError(f"cannot reach the database {name!r}: {exc}".strip()) from exc
    if unapplied:
        raise CommandError(
            f"the database has {len(unapplied)} unapplied migrations: "
            "run `python manage.py migrate` first"
        )
