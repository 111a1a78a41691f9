"""A task stuck (here: on a row lock held by the test) is cut off by the time limits, which
Celery leaves unenforced in the solo pool; the write is applied once the lock is gone."""

from __future__ import annotations

import time

import pytest

from quotas.services import KIND_CONSUME
from tests.e2e.conftest import redis_only
from tests.factories import QuotaFactory
from tests.lockwait import raw_connection
from workers.leases import PartitionLease
from writes.models import WriteRequest
from writes.services import write_request_accept

pytestmark = pytest.mark.e2e


def _wait_state(request_id, state, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if WriteRequest.objects.filter(request_id=request_id, state=state).exists():
            return True
        time.sleep(0.1)
    return False


def test_soft_limit_rolls_the_stuck_task_back_and_the_write_is_applied_later(deploy):
    deploy(dispatch="coalesced", CELERY_TASK_SOFT_TIME_LIMIT=1, CELERY_TASK_TIME_LIMIT=30)
    quota = QuotaFactory(limit=5)
    with raw_connection() as blocker:
        blocker.autocommit = False
        blocker.execute("SELECT 1 FROM quotas_quota WHERE id = %s FOR UPDATE", [quota.pk])
        accepted = write_request_accept(
            kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}
        ).request
        time.sleep(2.5)  # the drain blocks on the row, the soft limit interrupts it
        assert WriteRequest.objects.get(pk=accepted.pk).state == "pending"
        blocker.rollback()
    assert _wait_state(accepted.request_id, "applied", timeout=30)
    quota.refresh_from_db()
    assert quota.remaining == 4


@redis_only
def test_hard_limit_hands_the_partition_to_a_standby(deploy):
    fleet = deploy(
        dispatch="coalesced",
        partitions=1,
        standbys=1,
        CELERY_TASK_SOFT_TIME_LIMIT=600,
        CELERY_TASK_TIME_LIMIT=2,
    )
    owner_pid = int(PartitionLease(0).holder().split(":")[1])
    quota = QuotaFactory(limit=5)
    with raw_connection() as blocker:
        blocker.autocommit = False
        blocker.execute("SELECT 1 FROM quotas_quota WHERE id = %s FOR UPDATE", [quota.pk])
        accepted = write_request_accept(
            kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}
        ).request
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            holder = PartitionLease(0).holder()
            if holder and int(holder.split(":")[1]) != owner_pid:
                break
            time.sleep(0.1)
        else:
            pytest.fail("the stuck owner never gave the partition up")
        assert owner_pid not in {fleet.pid(name) for name in fleet.children}
        blocker.rollback()
    assert _wait_state(accepted.request_id, "applied", timeout=30)
    applied_by = WriteRequest.objects.get(pk=accepted.pk).applied_by
    assert int(applied_by.split(":")[1]) != owner_pid
