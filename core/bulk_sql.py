"""Many rows as one SQL row source, with one parameter.

A multi-row `VALUES (%s, %s), (%s, %s), ...` with thousands of placeholders costs psycopg more
to parse client-side than PostgreSQL takes to run the statement, and array parameters cost it
per-element escaping in Python. On PostgreSQL the rows travel instead as one JSON document
(serialized by the C json encoder) that `jsonb_array_elements` expands server-side; SQLite (the
embedded demo fallback) gets the plain VALUES list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from django.db import connection

T = TypeVar("T")

# Rows per multi-row statement (and ids per IN list): large enough that a statement's fixed
# cost is nothing per row, small enough for one JSON parameter.
CHUNK = 5000

# Column types: the PostgreSQL array type each column is passed as.
BIGINT, TEXT, JSONB, BOOLEAN = "bigint", "text", "jsonb", "boolean"


def rows_cte(
    name: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
) -> tuple[str, list[Any]]:
    """`name(col, ...) AS (...)`, to put after WITH, and its parameters. `columns` are
    (name, type) pairs; JSONB values are given as Python objects."""
    names = ", ".join(column for column, _ in columns)
    if connection.vendor == "postgresql":
        fields = ", ".join(
            f"e -> {index}" if kind == JSONB else f"(e ->> {index})::{kind}"
            for index, (_, kind) in enumerate(columns)
        )
        document = json.dumps([list(row) for row in rows], separators=(",", ":"))
        return (
            f"{name}({names}) AS (SELECT {fields} FROM jsonb_array_elements(%s::jsonb) AS e)",
            [document],
        )
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    params = [
        json.dumps(value) if kind == JSONB else value
        for row in rows
        for value, (_, kind) in zip(row, columns, strict=True)
    ]
    return f"{name}({names}) AS (VALUES {', '.join([placeholder] * len(rows))})", params


def in_list(column: str, values: Sequence[Any], kind: str = BIGINT) -> tuple[str, list[Any]]:
    """`column = ANY(%s)` (PostgreSQL) or `column IN (%s, ...)`, and its parameters."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s::{kind}[])", [list(values)]
    return f"{column} IN ({', '.join(['%s'] * len(values))})", list(values)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
