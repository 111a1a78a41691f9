"""The call a user's own view makes: quota_consume_enqueue, durable at once, optionally
waiting for the outcome (woken by the finish notice of a real drain, no polling)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from quotas.services import quota_consume_enqueue
from tests.factories import QuotaFactory
from writes.models import WriteRequest
from writes.partitions import partition_for
from writes.services import partition_drain

pytestmark = pytest.mark.django_db(transaction=True)


def _drain_soon(partition: int, delay: float = 0.3) -> threading.Thread:
    def drain() -> None:
        try:
            partition_drain(partition=partition, linger=0)
        finally:
            connection.close()

    timer = threading.Timer(delay, drain)
    timer.start()
    return timer


def test_enqueue_is_durable_at_once_and_applied_by_the_drain():
    quota = QuotaFactory(limit=5)
    write = quota_consume_enqueue(quota_id=quota.pk, amount=2, request_id="mine-1")
    assert WriteRequest.objects.get(request_id="mine-1").state == "pending"
    assert write.state == "pending"
    partition_drain(partition=partition_for(f"quotas.quota:{quota.pk}"), linger=0)
    quota.refresh_from_db()
    assert quota.remaining == 3


def test_enqueue_and_wait_returns_the_outcome():
    quota = QuotaFactory(limit=5)
    drainer = _drain_soon(partition_for(f"quotas.quota:{quota.pk}"))
    write = quota_consume_enqueue(quota_id=quota.pk, amount=2, wait=5)
    drainer.join()
    assert (write.state, write.result["remaining"]) == ("applied", 3)
    stored = WriteRequest.objects.get(pk=write.pk)  # the notice told what was stored
    assert (write.state, write.result) == (stored.state, stored.result)
    refused = _drain_soon(partition_for(f"quotas.quota:{quota.pk}"))
    too_much = quota_consume_enqueue(quota_id=quota.pk, amount=4, wait=5)
    refused.join()
    assert (too_much.state, too_much.result["reason"]) == ("refused", "insufficient")


def test_enqueue_inside_a_transaction_commits_with_it_and_cannot_wait():
    quota = QuotaFactory(limit=5)
    with pytest.raises(RuntimeError), transaction.atomic():
        quota_consume_enqueue(quota_id=quota.pk, request_id="inside", wait=1)
    assert not WriteRequest.objects.filter(request_id="inside").exists()  # rolled back
    with transaction.atomic():
        quota_consume_enqueue(quota_id=quota.pk, request_id="inside")
    assert WriteRequest.objects.filter(request_id="inside").exists()
