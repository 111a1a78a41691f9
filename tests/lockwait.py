"""Observe lock waits from outside, to force an interleaving instead of hoping for one."""

import time

import psycopg
from django.db import connection


def raw_connection() -> psycopg.Connection:
    """A psycopg connection to the test database, outside Django's connection handling."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params.pop("prepare_threshold", None)
    params.pop("options", None)
    return psycopg.connect(**params, autocommit=True)


def wait_until_blocked(count: int = 1, timeout: float = 10.0) -> None:
    """Return once `count` sessions of the test database wait on a lock; fail after timeout."""
    deadline = time.monotonic() + timeout
    with raw_connection() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).fetchone()[0]
            if waiting >= count:
                return
            time.sleep(0.01)
    raise AssertionError(f"{count} session(s) never blocked on a lock within {timeout}s")
