"""Prepared statements for the few statements that run thousands of times a second.

Django's PostgreSQL cursors bind parameters client-side: every execution sends the whole
statement text, parameters inlined, and PostgreSQL parses and plans it again. For the write
path's statements (one acceptance INSERT per group commit, a drain's handful per group)
that was half of their server time (pg_stat_statements, docs/BENCHMARKS.md). A cursor from
`prepared_cursor()` binds server-side and prepares each statement once per connection.

It runs on Django's connection, inside its transaction, with its errors translated to
Django's (so a lost connection is still an OperationalError to the callers). Use it for
fixed SQL text only (parameters vary, the text does not); never for ORM queries.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from django.db import connection


class PreparedCursor:
    """A psycopg server-binding cursor whose `execute` prepares the statement."""

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PreparedCursor:
        self._cursor.execute(sql, params, prepare=True)
        return self

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


@contextmanager
def prepared_cursor() -> Iterator[Any]:
    """A prepared-statement cursor on this thread's Django connection (a plain cursor on
    databases other than PostgreSQL: the embedded SQLite demo fallback)."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    raw = connection.connection
    enable_prepared_statements(raw)
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        yield PreparedCursor(cursor)


def enable_prepared_statements(raw: psycopg.Connection) -> None:
    """Django turns psycopg's prepared statements off (prepare_threshold=None), which also
    ignores `prepare=True`. Turning them on changes nothing for Django's own queries: its
    cursors bind client-side, and psycopg never prepares those."""
    if raw.prepare_threshold is None:
        raw.prepare_threshold = 5
