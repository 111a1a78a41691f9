"""Partition ownership on a Redis broker: a lease (a Redis lock with a TTL) renewed by a
heartbeat. Redis lets any number of workers consume one list; the lease makes sure only the
holder consumes its partition queue, and a standby takes over within a TTL after the holder
dies, even by SIGKILL. (RabbitMQ needs none of this: partition queues are single-active-
consumer queues there.)
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from enum import Enum

import redis
from django.conf import settings
from redis.exceptions import LockError, RedisError

from core.redis_client import redis_client
from workers.routing import queue_name


class Renewal(Enum):
    KEPT = "kept"  # still ours, TTL reset
    LOST = "lost"  # somebody else holds it now
    UNKNOWN = "unknown"  # Redis did not answer


def lease_key(partition: int) -> str:
    """The Redis key of a partition's lease; its value names the holder (host:pid:nonce)."""
    return f"racefree:lease:{queue_name(partition)}"


class PartitionLease:
    """The lease of one partition, held by this process once `try_acquire()` returned True."""

    def __init__(
        self, partition: int, *, client: redis.Redis | None = None, ttl: float | None = None
    ) -> None:
        self.partition = partition
        self.ttl = settings.PARTITION_LEASE_TTL if ttl is None else ttl
        if self.ttl <= 0:
            raise ValueError(f"a lease TTL must be positive, not {self.ttl}")
        self.client = client or redis_client()
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        # thread_local=False: the heartbeat thread renews what the main thread acquired.
        self._lock = self.client.lock(lease_key(partition), timeout=self.ttl, thread_local=False)

    def try_acquire(self) -> bool:
        """Take the lease if nobody holds it. Never blocks."""
        try:
            return bool(self._lock.acquire(blocking=False, token=self.token))
        except RedisError:
            return False

    def renew(self) -> Renewal:
        """Reset the TTL if the lease is still ours; take it back if it vanished (Redis lost
        its data), unless somebody else was quicker."""
        try:
            self._lock.reacquire()
            return Renewal.KEPT
        except LockError:
            return Renewal.KEPT if self.try_acquire() else Renewal.LOST
        except RedisError:
            return Renewal.UNKNOWN

    def release(self) -> None:
        """Give the lease up at once (a clean stop), so a standby need not wait for the TTL."""
        with contextlib.suppress(LockError, RedisError):
            self._lock.release()

    def holder(self) -> str | None:
        """Who holds the lease now (host:pid:nonce), or None."""
        value = self.client.get(lease_key(self.partition))
        return value.decode() if value else None
