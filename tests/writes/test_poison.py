"""A write that always fails transiently (here: its quota's row is locked by someone else,
so every attempt hits lock_timeout) is retried with back-off, then failed at
DRAIN_MAX_ATTEMPTS, while the other objects of its partition keep flowing; `writes_retry`
puts it back at the end of its object's queue. Real PostgreSQL, the real drain."""

from __future__ import annotations

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from quotas.services import KIND_CONSUME
from tests.factories import QuotaFactory
from writes.models import WriteRequest
from writes.partitions import partition_for
from writes.services import partition_drain, write_request_accept

pytestmark = pytest.mark.django_db(transaction=True)


def _two_quotas_in_one_partition():
    first = QuotaFactory(limit=100)
    partition = partition_for(f"quotas.quota:{first.pk}")
    while True:
        other = QuotaFactory(limit=100)
        if partition_for(f"quotas.quota:{other.pk}") == partition:
            return first, other, partition


def _accept(quota, request_id):
    return write_request_accept(
        kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}, request_id=request_id
    ).request


@pytest.fixture
def quota_row_locked_elsewhere():
    """Another session holds a row lock on a quota until the test ends; this test's own
    session gives up waiting for locks after 100 ms (a transient error, every time)."""
    holders = []

    def lock(quota) -> psycopg.Connection:
        holder = psycopg.connect(**connection.get_connection_params())
        holder.execute("SELECT 1 FROM quotas_quota WHERE id = %s FOR UPDATE", [quota.pk])
        holders.append(holder)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '100ms'")
        return holder

    yield lock
    for holder in holders:
        holder.close()
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


def _due_now(request_ids) -> None:
    """Skip the back-off wait (the test does not sleep through 2, 4, 8... seconds)."""
    WriteRequest.objects.filter(request_id__in=request_ids).update(retry_at=None)


@override_settings(DRAIN_MAX_ATTEMPTS=3)
def test_a_poison_write_is_failed_after_its_attempts_and_its_partition_keeps_flowing(
    quota_row_locked_elsewhere,
):
    poisoned, healthy, partition = _two_quotas_in_one_partition()
    holder = quota_row_locked_elsewhere(poisoned)
    poison = _accept(poisoned, "poison-1")
    behind = _accept(poisoned, "behind-poison")  # the same object: it must wait its turn
    flowing = [_accept(healthy, f"healthy-{n}") for n in range(3)]

    first = partition_drain(partition=partition, linger=0)
    assert first.postponed == 2 and first.applied == 3  # the other object flowed
    row = WriteRequest.objects.get(pk=poison.pk)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.retry_at is not None and "lock timeout" in row.result["last_error"]
    assert all(WriteRequest.objects.get(pk=w.pk).state == "applied" for w in flowing)

    # Within its back-off the object is left alone; new writes of others still flow.
    more = _accept(healthy, "healthy-later")
    assert partition_drain(partition=partition, linger=0).postponed == 0
    assert WriteRequest.objects.get(pk=more.pk).state == "applied"
    assert WriteRequest.objects.get(pk=poison.pk).attempts == 1

    _due_now(["poison-1", "behind-poison"])
    partition_drain(partition=partition, linger=0)  # attempt 2
    _due_now(["poison-1", "behind-poison"])
    last = partition_drain(partition=partition, linger=0)  # attempt 3 = the last: isolated
    poison_row, behind_row = (
        WriteRequest.objects.get(pk=poison.pk),
        WriteRequest.objects.get(pk=behind.pk),
    )
    assert poison_row.state == "failed" and "failed 3 times" in poison_row.result["detail"]
    # Alone, the write behind it fails the same way (its object's row is still locked).
    assert behind_row.state == "failed"
    assert last.failed == 2

    # The lock goes away; the operator puts both back: applied once, in their order.
    holder.close()
    call_command("writes_retry", "--failed", "--since", "1h")
    partition_drain(partition=partition, linger=0)
    poison_row = WriteRequest.objects.get(request_id="poison-1")  # a new id: at the end
    behind_row = WriteRequest.objects.get(request_id="behind-poison")
    poisoned.refresh_from_db()
    assert (poison_row.state, behind_row.state) == ("applied", "applied")
    assert (poison_row.pk, poison_row.applied_seq) <= (behind_row.pk, behind_row.applied_seq)
    assert poisoned.remaining == 98


def test_writes_retry_puts_a_failed_write_back_at_the_end_of_its_objects_queue():
    quota = QuotaFactory(limit=10)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    failed = _accept(quota, "was-failed")
    WriteRequest.objects.filter(pk=failed.pk).update(
        state="failed", result={"reason": "error", "detail": "x"}, finished_at="2026-01-01T00:00Z"
    )
    later = _accept(quota, "accepted-after")
    partition_drain(partition=partition, linger=0)
    assert WriteRequest.objects.get(pk=later.pk).state == "applied"

    call_command("writes_retry", "--request-id", "was-failed")
    retried = WriteRequest.objects.get(request_id="was-failed")
    assert (retried.state, retried.attempts, retried.result) == ("pending", 0, {})
    assert retried.pk > later.pk  # at the end of its object's queue
    partition_drain(partition=partition, linger=0)
    retried.refresh_from_db()
    quota.refresh_from_db()
    assert retried.state == "applied" and quota.remaining == 8
    # Applied in the order of its new place: after the write accepted before the retry.
    assert retried.applied_seq > WriteRequest.objects.get(pk=later.pk).applied_seq
