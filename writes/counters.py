"""Counters of the request log, for the metrics and the stress tool.

Outcomes are counted by the very transaction that makes writes final (writes/services.py
`_finish`), so they are exact: what committed, once. Events outside a transaction (a drain
published, a reconciler's republish) are added in a statement of their own. Rows are per
partition and name, so partitions never contend; reads sum them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable

from django.db import connection

from writes.models import WriteCounter

logger = logging.getLogger(__name__)

_TABLE = WriteCounter._meta.db_table
# Upper bounds of the group-size histogram (writes applied per transaction).
GROUP_SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)


def final_name(kind: str, state: str) -> str:
    return f"final|{kind}|{state}"


def bucket_name(size: int) -> str:
    bound = next((b for b in GROUP_SIZE_BUCKETS if size <= b), None)
    return f"group_size|{bound if bound is not None else '+Inf'}"


def finish_increments(kind_states: Iterable[tuple[str, str]]) -> list[tuple[str, int]]:
    """What finishing one group adds: its outcomes by kind and state, and its size."""
    outcomes = Counter(final_name(kind, state) for kind, state in kind_states)
    size = sum(outcomes.values())
    increments = {
        **outcomes,
        bucket_name(size): 1,
        "group_size_sum": size,
        "group_size_count": 1,
    }
    return sorted(increments.items())  # one lock order for every transaction


def upsert_sql(partition_param: str = "%s", rows_param: str = "%s") -> str:
    """An `INSERT ... ON CONFLICT` adding increments (a JSON list of {"name", "n"}) to a
    partition's counters; usable as a statement or a CTE of one."""
    return (
        f"INSERT INTO {_TABLE} (partition, name, value) "
        f"SELECT {partition_param}, c.name, c.n FROM jsonb_to_recordset({rows_param}::jsonb) "
        "AS c(name text, n bigint) ORDER BY c.name "
        f"ON CONFLICT (partition, name) DO UPDATE SET value = {_TABLE}.value + EXCLUDED.value"
    )


def increments_json(increments: list[tuple[str, int]]) -> str:
    return json.dumps([{"name": name, "n": n} for name, n in increments])


def counter_add(*, partition: int, name: str, amount: int = 1) -> None:
    """Add to one counter now, in its own statement (best effort: a failure is logged)."""
    try:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(upsert_sql(), [partition, increments_json([(name, amount)])])
            else:  # the embedded SQLite demo fallback
                cursor.execute(
                    f"INSERT INTO {_TABLE} (partition, name, value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (partition, name) DO UPDATE SET value = value + excluded.value",
                    [partition, name, amount],
                )
    except Exception as exc:
        logger.warning("counter %s not updated: %s", name, exc)


def counter_totals(*, by_partition: bool = False) -> dict[str, int] | dict[tuple[str, int], int]:
    """Every counter summed over partitions ({name: value}), or {(name, partition): value}."""
    with connection.cursor() as cursor:
        if by_partition:
            cursor.execute(f"SELECT name, partition, value FROM {_TABLE}")
            return {(name, partition): value for name, partition, value in cursor.fetchall()}
        cursor.execute(f"SELECT name, sum(value) FROM {_TABLE} GROUP BY name")
        return {name: int(total) for name, total in cursor.fetchall()}
