"""Partition leases on the real Redis (settings.REDIS_URL): exclusive, released, expiring."""

import time
import uuid

import pytest

from core.redis_client import redis_client
from tests.concurrency import raised, run_in_processes
from workers.leases import PartitionLease, Renewal, lease_key

TTL = 0.5


@pytest.fixture
def partition():
    """A partition far above WRITE_PARTITIONS: no running worker or other test uses its lease.

    Only this key is deleted (no flushdb): other work may hold leases in the same database."""
    number = 1_000_000 + uuid.uuid4().int % 1_000_000
    client = redis_client()
    client.delete(lease_key(number))
    yield number
    client.delete(lease_key(number))


def _wait_until_acquired(lease: PartitionLease, timeout: float) -> float:
    """Poll like a standby; return how long it took (pytest.fail after `timeout`)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if lease.try_acquire():
            return time.monotonic() - started
        time.sleep(0.01)
    pytest.fail(f"lease not acquired within {timeout}s; holder {lease.holder()}")


def test_only_one_holder_acquires_a_partition_lease(partition):
    first, second = PartitionLease(partition, ttl=5), PartitionLease(partition, ttl=5)

    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert second.holder() == first.token
    # A standby cannot make itself the holder by "renewing".
    assert second.renew() is Renewal.LOST
    assert first.renew() is Renewal.KEPT
    assert first.holder() == first.token


def test_the_lease_is_set_with_its_ttl(partition):
    lease = PartitionLease(partition, ttl=TTL)
    assert lease.try_acquire()
    assert 0 < redis_client().pttl(lease_key(partition)) <= TTL * 1000


def test_a_standby_acquires_at_once_after_the_holder_releases(partition):
    holder, standby = PartitionLease(partition, ttl=5), PartitionLease(partition, ttl=5)
    assert holder.try_acquire()
    assert not standby.try_acquire()

    holder.release()

    assert standby.try_acquire() is True  # no waiting for the TTL
    assert standby.holder() == standby.token
    assert holder.renew() is Renewal.LOST
    assert holder.try_acquire() is False


def test_an_unrenewed_lease_expires_after_its_ttl_and_a_standby_takes_over(partition):
    holder, standby = PartitionLease(partition, ttl=TTL), PartitionLease(partition, ttl=TTL)
    assert holder.try_acquire()
    assert not standby.try_acquire()

    waited = _wait_until_acquired(standby, timeout=TTL + 2)

    # Taken over once the TTL ran out, not before (some slack for Redis' millisecond expiry).
    assert waited >= TTL * 0.8
    assert standby.holder() == standby.token
    # The old holder has lost it for good: renewing fails, and its late release must not free
    # the new holder's lease.
    assert holder.renew() is Renewal.LOST
    holder.release()
    assert standby.holder() == standby.token
    assert holder.try_acquire() is False


def test_renewing_keeps_the_lease_past_its_ttl(partition):
    holder, standby = PartitionLease(partition, ttl=TTL), PartitionLease(partition, ttl=TTL)
    assert holder.try_acquire()

    # Renew every TTL/3 (like PartitionOwner) for three TTLs: the standby never gets in.
    deadline = time.monotonic() + 3 * TTL
    renewals = []
    while time.monotonic() < deadline:
        time.sleep(TTL / 3)
        renewals.append(holder.renew())
        assert standby.try_acquire() is False
    assert renewals and set(renewals) == {Renewal.KEPT}
    assert standby.holder() == holder.token


def test_renewing_takes_back_a_lease_that_vanished(partition):
    # Redis lost its data (a restart without persistence): nobody else holds it, keep it.
    holder, standby = PartitionLease(partition, ttl=5), PartitionLease(partition, ttl=5)
    assert holder.try_acquire()
    redis_client().delete(lease_key(partition))

    assert holder.renew() is Renewal.KEPT
    assert holder.holder() == holder.token
    assert standby.try_acquire() is False


def _acquire_in_child(partition: int) -> tuple[bool, str]:
    lease = PartitionLease(partition, ttl=5)
    return lease.try_acquire(), lease.token


def test_only_one_of_two_processes_acquires_a_partition_lease(partition):
    results = run_in_processes([(_acquire_in_child, (partition,), {})] * 2)

    assert raised(results) == []
    winners = [token for acquired, token in results if acquired]
    assert len(winners) == 1
    assert len({token for _, token in results}) == 2  # two distinct holders competed
    assert PartitionLease(partition).holder() == winners[0]


@pytest.mark.parametrize("ttl", [0, -1.0])
def test_a_lease_refuses_a_ttl_that_is_not_positive(partition, ttl):
    with pytest.raises(ValueError, match="must be positive"):
        PartitionLease(partition, ttl=ttl)
