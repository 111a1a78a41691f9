"""`manage.py stress` end to end: real producer processes, real workers, real PostgreSQL.

The seed strategies must show their races (that is what makes the other results mean
something); every other strategy must end with every invariant true and no error.
"""

from __future__ import annotations

import io
import json

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command

from tests.commands import run_manage_py

pytestmark = pytest.mark.django_db(transaction=True)


def stress(*args: str) -> list[dict]:
    out = io.StringIO()
    call_command("stress", *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


@pytest.mark.processes
def test_naive_quota_loses_updates():
    [run] = stress("--scenario", "quota", "--strategy", "naive", "--requests", "400")
    # Read-modify-write: concurrent producers turn the same `remaining` into the same value.
    assert run["errors"].get("lost update", 0) > 0
    assert run["broke"]


@pytest.mark.processes
def test_naive_tags_raise_integrity_errors():
    # Check-then-insert collides only while a pair is first linked, so the window is short:
    # give it up to three bursts of 8 producers released together on one image.
    errors = 0
    for _ in range(3):
        [run] = stress(
            "--scenario", "tags", "--strategy", "naive", "--requests", "200", "--producers", "8"
        )
        errors = run["errors"].get("IntegrityError", 0)
        if errors:
            break
    assert errors > 0
    # The unique constraint still holds: the race costs exceptions, not duplicate rows.
    assert run["invariants"] == {"one link per (image, tag)": True}


@pytest.mark.processes
@pytest.mark.parametrize("strategy", ["lock", "serializable", "atomic", "partitioned", "coalesced"])
def test_quota_strategies_hold_every_invariant(clean_broker, cache_redis, strategy):
    [run] = stress("--scenario", "quota", "--strategy", strategy, "--requests", "200")
    assert run["invariants_ok"], run["invariants"]
    assert run["failures"] == 0, run["errors"]
    assert run["completed"] == 200
    # The quota's limit is the request count: everything is granted, nothing twice.
    assert run["outcomes"].get("granted", 0) + run["outcomes"].get("applied", 0) == 200


@pytest.mark.processes
@pytest.mark.parametrize("strategy", ["atomic", "coalesced"])
def test_tag_strategies_hold_every_invariant(clean_broker, cache_redis, strategy):
    [run] = stress("--scenario", "tags", "--strategy", strategy, "--requests", "200")
    assert run["invariants_ok"], run["invariants"]
    assert run["errors"] == {}


@pytest.mark.processes
def test_coalesced_publishes_far_fewer_messages_than_writes(clean_broker, cache_redis):
    [single, batched] = [
        stress(
            "--scenario", "quota", "--strategy", "coalesced", "--requests", "400",
            "--accept-batch", str(batch),
        )[0]
        for batch in (1, 50)
    ]  # fmt: skip
    for run in (single, batched):
        assert run["invariants_ok"] and run["failures"] == 0
    assert single["messages"] < 400
    assert batched["messages"] <= 400 // 50


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--hot", "2"], "hot must be a share of the traffic"),
        (["--requests", "0"], "requests must be at least 1"),
        (["--producers", "0"], "producers must be at least 1"),
        (["--accept-batch", "-3"], "accept_batch must be at least 1"),
        (["--rate", "0"], "rate must be above 0"),
    ],
)
def test_bad_options_are_refused_with_a_reason(args, reason):
    result = run_manage_py("stress", *args)
    assert result.returncode == 1
    assert reason in result.stderr and "Traceback" not in result.stderr, result.stderr[-2000:]


def test_an_unmigrated_database_is_named_not_a_traceback():
    db = settings.DATABASES["default"]
    name = "racefree_unmigrated_check"
    admin = psycopg.conninfo.make_conninfo(
        host=db["HOST"],
        port=db["PORT"],
        user=db["USER"],
        password=db["PASSWORD"] or None,
        dbname="postgres",
    )
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        auth = f"{db['USER']}:{db['PASSWORD']}" if db["PASSWORD"] else db["USER"]
        url = f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{name}"
        result = run_manage_py("stress", "--strategy", "atomic", DATABASE_URL=url)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
    assert result.returncode == 1
    assert "unapplied migrations" in result.stderr and "migrate" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
