"""The seed's quota question, for real: many processes decrement one row at once."""

import threading
import time

import pytest
from django.db import connection, transaction
from django.db.models import Sum

from quotas.models import Quota, QuotaLedgerEntry
from quotas.services import quota_consume
from tests.concurrency import raised, run_in_processes, run_threads
from tests.factories import QuotaFactory
from tests.lockwait import wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)


def _consume_many(quota_id, process, count):
    return [
        quota_consume(quota_id=quota_id, amount=1, request_id=f"p{process}-{i}").granted
        for i in range(count)
    ]


def _consume_same(quota_id, request_id):
    return quota_consume(quota_id=quota_id, amount=1, request_id=request_id)


def _seed_read_modify_write(quota_id, count):
    """The seed's naive decrement: read the row, subtract in Python, save."""
    granted = 0
    for _ in range(count):
        with transaction.atomic():
            quota = Quota.objects.get(pk=quota_id)
            if quota.remaining >= 1:
                quota.remaining -= 1
                quota.save(update_fields=["remaining"])
                granted += 1
    return granted


@pytest.mark.processes
def test_2000_consumptions_from_8_processes_grant_exactly_the_limit():
    quota = QuotaFactory(limit=1000)

    results = run_in_processes([(_consume_many, (quota.pk, p, 250), {}) for p in range(8)])

    assert raised(results) == []
    granted = sum(g for per_process in results for g in per_process)
    assert granted == 1000
    quota.refresh_from_db()
    assert quota.remaining == 0
    ledger = QuotaLedgerEntry.objects.filter(quota=quota)
    assert ledger.count() == 2000
    assert ledger.filter(outcome="granted").count() == 1000
    assert ledger.filter(outcome="refused").count() == 1000
    assert -ledger.aggregate(s=Sum("delta"))["s"] == quota.limit - quota.remaining


@pytest.mark.processes
def test_seed_read_modify_write_loses_updates_under_the_same_pressure():
    """Honesty check: without the conditional UPDATE, the same harness loses decrements."""
    quota = QuotaFactory(limit=100_000)

    results = run_in_processes([(_seed_read_modify_write, (quota.pk, 100), {}) for _ in range(8)])

    quota.refresh_from_db()
    granted = sum(results)
    assert granted == 800
    assert quota.limit - quota.remaining < granted, "no update was lost: the harness is too gentle"


@pytest.mark.processes
def test_same_request_id_from_8_processes_is_applied_once():
    quota = QuotaFactory(limit=10)

    results = run_in_processes([(_consume_same, (quota.pk, "the-one"), {}) for _ in range(8)])

    assert raised(results) == []
    assert [r.duplicate for r in results].count(False) == 1
    assert all(r.granted and r.remaining == 9 for r in results)
    quota.refresh_from_db()
    assert quota.remaining == 9
    assert QuotaLedgerEntry.objects.filter(request_id="the-one").count() == 1


def test_forced_interleaving_read_modify_write_loses_an_update():
    """Deterministic: A and B both read 10, both write 9: two decrements, one recorded."""
    quota = QuotaFactory(limit=10)
    a_read, b_read, a_committed = threading.Event(), threading.Event(), threading.Event()

    def a():
        with transaction.atomic():
            row = Quota.objects.get(pk=quota.pk)
            a_read.set()
            b_read.wait(10)
            row.remaining -= 1
            row.save(update_fields=["remaining"])
        a_committed.set()
        connection.close()

    def b():
        with transaction.atomic():
            a_read.wait(10)
            row = Quota.objects.get(pk=quota.pk)
            b_read.set()
            a_committed.wait(10)
            row.remaining -= 1
            row.save(update_fields=["remaining"])
        connection.close()

    run_threads(a, b)

    quota.refresh_from_db()
    assert quota.remaining == 9  # the lost update


def test_forced_interleaving_conditional_update_loses_nothing():
    """Same interleaving for the service: B's UPDATE waits for A's commit, then re-reads."""
    quota = QuotaFactory(limit=10)
    a_updated = threading.Event()
    outcomes = {}

    def a():
        with transaction.atomic():
            outcomes["a"] = quota_consume(quota_id=quota.pk, amount=1, request_id="a")
            a_updated.set()
            wait_until_blocked(count=1)  # B is queued behind our row lock, not failing
        connection.close()

    def b():
        a_updated.wait(10)
        outcomes["b"] = quota_consume(quota_id=quota.pk, amount=1, request_id="b")
        connection.close()

    run_threads(a, b)

    quota.refresh_from_db()
    assert quota.remaining == 8
    assert (outcomes["a"].remaining, outcomes["b"].remaining) == (9, 8)


def test_forced_interleaving_last_unit_goes_to_exactly_one():
    quota = QuotaFactory(limit=1)
    a_updated = threading.Event()
    outcomes = {}

    def a():
        with transaction.atomic():
            outcomes["a"] = quota_consume(quota_id=quota.pk, amount=1, request_id="a")
            a_updated.set()
            wait_until_blocked(count=1)
            time.sleep(0.05)
        connection.close()

    def b():
        a_updated.wait(10)
        outcomes["b"] = quota_consume(quota_id=quota.pk, amount=1, request_id="b")
        connection.close()

    run_threads(a, b)

    assert outcomes["a"].granted and not outcomes["b"].granted
    assert outcomes["b"].reason == "insufficient"
    quota.refresh_from_db()
    assert quota.remaining == 0
