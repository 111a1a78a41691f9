"""A PostgreSQL connection of the process's own, for one job done by one thread at a time.

Django's connections belong to threads and pay a health check (a `SELECT 1` round trip) at
the start of each request. Work that one thread does at a time on behalf of many (a group
commit's leader) runs here instead: connected lazily (again after a fork), autocommit, its
statements prepared (core/pg_prepared.py), closed and opened again after a connection error.
Errors surface as Django's own (OperationalError, IntegrityError, ...), so callers and the
API's error mapping treat them alike.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TypeVar

import psycopg
from django import db
from django.db import connections

from core.pg_prepared import PreparedCursor, enable_prepared_statements

T = TypeVar("T")


class DedicatedConnection:
    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._conn: psycopg.Connection | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def run(self, work: Callable[[PreparedCursor], T], *, retry: bool = False) -> T:
        """`work(cursor)` in autocommit. With `retry`, once more on a fresh connection after
        the connection broke (only for work that is safe to do twice)."""
        with self._lock:
            for attempt in (1, 2):
                try:
                    with psycopg.Cursor(self._connection()) as cursor:
                        return work(PreparedCursor(cursor))
                except psycopg.Error as exc:
                    broken = self._conn is None or self._conn.closed or self._conn.broken
                    if broken:
                        self._close()
                    if attempt == 2 or not retry or not broken:
                        raise _as_django_error(exc) from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._close()

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._pid != os.getpid() or self._conn.closed:
            params = connections[self.alias].get_connection_params()
            self._conn = psycopg.connect(**params, autocommit=True)
            enable_prepared_statements(self._conn)
            self._pid = os.getpid()
        return self._conn

    def _close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            with contextlib.suppress(Exception):
                self._conn.close()
        self._conn = None


def _as_django_error(exc: psycopg.Error) -> Exception:
    """The Django exception for a psycopg one, matched by name as Django's own wrapper does."""
    for django_error in _DJANGO_ERRORS:
        if isinstance(exc, getattr(psycopg, django_error.__name__)):
            return django_error(str(exc))
    return db.Error(str(exc))


_DJANGO_ERRORS = (
    db.DataError,
    db.OperationalError,
    db.IntegrityError,
    db.InternalError,
    db.ProgrammingError,
    db.NotSupportedError,
    db.DatabaseError,
    db.InterfaceError,
)
