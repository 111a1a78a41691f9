"""Changing WRITE_PARTITIONS while writes flow: an object's writes accepted under the old
count wait in its old partition, those accepted under the new one in its new partition;
whichever drain comes first applies them all, in acceptance order, once."""

from __future__ import annotations

import pytest
from django.test import override_settings

from quotas.models import QuotaLedgerEntry
from quotas.services import KIND_CONSUME
from tests.factories import QuotaFactory
from writes.models import WriteRequest
from writes.partitions import partition_for
from writes.services import partition_drain, write_request_accept, write_requests_rehome

pytestmark = pytest.mark.django_db(transaction=True)


def _quota_moving_partition(old: int, new: int):
    while True:
        quota = QuotaFactory(limit=5)
        key = f"quotas.quota:{quota.pk}"
        if partition_for(key, old) != partition_for(key, new):
            return quota, partition_for(key, old), partition_for(key, new)


def _consume(quota, request_id, amount=1):
    write_request_accept(
        kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": amount}, request_id=request_id
    )


@pytest.mark.parametrize("drained_first", ["new", "old"])
def test_an_objects_writes_split_over_two_partitions_apply_in_acceptance_order(drained_first):
    quota, old_partition, new_partition = _quota_moving_partition(8, 16)
    with override_settings(WRITE_PARTITIONS=8):
        _consume(quota, "before-1", 2)
        _consume(quota, "before-2", 2)
    with override_settings(WRITE_PARTITIONS=16):
        _consume(quota, "after-1", 2)  # only 1 left by then: refused, if order is kept
        first, second = (
            (new_partition, old_partition)
            if drained_first == "new"
            else (old_partition, new_partition)
        )
        partition_drain(partition=first, linger=0)
        partition_drain(partition=second, linger=0)
    rows = {r.request_id: r for r in WriteRequest.objects.all()}
    assert {r.partition for r in rows.values()} == {old_partition, new_partition}
    assert [rows[r].state for r in ("before-1", "before-2", "after-1")] == [
        "applied",
        "applied",
        "refused",
    ]
    applied_order = sorted(rows.values(), key=lambda r: (r.applied_seq, r.pk))
    assert [r.request_id for r in applied_order] == ["before-1", "before-2", "after-1"]
    quota.refresh_from_db()
    assert quota.remaining == 1 and QuotaLedgerEntry.objects.count() == 3


def test_writes_of_partitions_that_no_longer_exist_are_rehomed():
    quota, old_partition = QuotaFactory(limit=5), 0
    while (old_partition := partition_for(f"quotas.quota:{quota.pk}", 16)) < 4:
        quota = QuotaFactory(limit=5)
    with override_settings(WRITE_PARTITIONS=16):
        _consume(quota, "orphan-1")
    assert WriteRequest.objects.get(request_id="orphan-1").partition == old_partition
    with override_settings(WRITE_PARTITIONS=4):
        assert write_requests_rehome() == 1
        row = WriteRequest.objects.get(request_id="orphan-1")
        assert row.partition == partition_for(row.object_key) < 4
        partition_drain(partition=row.partition, linger=0)
    assert WriteRequest.objects.get(request_id="orphan-1").state == "applied"
