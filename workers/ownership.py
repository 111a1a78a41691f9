"""What a partition's owner does beside consuming its queue, in one background thread:

- renew the partition lease (Redis brokers) and step down the moment it is lost;
- reconcile: when a write of the partition has been pending longer than RECONCILE_AFTER and
  the queue is empty (its message was lost: a broker restart, a crash before the ack), or
  longer than RECONCILE_FORCE_AFTER in any case, publish a drain of the partition.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection

from workers import time_limits
from workers.broker import queue_depth
from workers.leases import PartitionLease, Renewal
from workers.routing import SHARED_QUEUE, queue_name
from writes.publishing import partition_wake_flag_clear, partition_wake_rollback_unsafe
from writes.selectors import partition_oldest_pending_age

logger = logging.getLogger(__name__)


def partition_reconcile(partition: int, *, taking_over: bool = False) -> str | None:
    """Publish a drain of `partition` if a write there waits too long; return its task id.

    `taking_over`: a new owner drains whatever its predecessor left, at once (a crashed
    predecessor may also have left the wake-up flag set, which would silence new writes).
    """
    age = partition_oldest_pending_age(partition=partition)
    if age is None:
        if taking_over:
            partition_wake_flag_clear(partition)
        return None
    if taking_over:
        return partition_wake_rollback_unsafe(partition, force=True)
    if age < settings.RECONCILE_AFTER:
        return None
    queue = SHARED_QUEUE if settings.WRITE_ROUTING == "shared" else queue_name(partition)
    if age < settings.RECONCILE_FORCE_AFTER and queue_depth(queue) > 0:
        return None  # a backlog, not a loss: the queued messages will get there
    task_id = partition_wake_rollback_unsafe(partition, force=True)
    logger.warning(
        "partition %s: a write has waited %.1fs with no message on its way; drain %s published",
        partition,
        age,
        task_id,
    )
    return task_id


class PartitionOwner(threading.Thread):
    """Keeps a partition's lease alive and reconciles its pending writes while the worker
    consumes. `on_lost` is called once if the lease is lost (the worker must stop), `on_hung`
    if a task runs past the hard time limit (the process must end)."""

    def __init__(
        self,
        partition: int,
        *,
        lease: PartitionLease | None,
        on_lost: Callable[[], None],
        on_hung: Callable[[], None],
    ) -> None:
        super().__init__(name=f"partition-owner-{partition}", daemon=True)
        self.partition = partition
        self.lease = lease
        self.on_lost = on_lost
        self.on_hung = on_hung
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        renew_every = self.lease.ttl / 3 if self.lease else None
        last_kept = time.monotonic()
        next_renewal = time.monotonic()
        next_reconcile = time.monotonic() + settings.RECONCILE_INTERVAL
        self._reconcile(taking_over=True)
        while not self._stop.is_set():
            now = time.monotonic()
            if self.lease and now >= next_renewal:
                renewal = self.lease.renew()
                if renewal is Renewal.KEPT:
                    last_kept = now
                elif renewal is Renewal.LOST or now - last_kept > self.lease.ttl:
                    # Lost, or unconfirmed for a whole TTL: a standby may own it by now.
                    logger.error(
                        "partition %s: lease lost (%s); stepping down",
                        self.partition,
                        renewal.value,
                    )
                    self.on_lost()
                    return
                next_renewal = now + renew_every
            running_for = time_limits.task_running_for()
            if running_for is not None and running_for > settings.CELERY_TASK_TIME_LIMIT:
                logger.error(
                    "partition %s: a task has run %.0fs, past the hard time limit; giving the "
                    "partition up",
                    self.partition,
                    running_for,
                )
                self.on_hung()
                return
            if now >= next_reconcile:
                self._reconcile()
                next_reconcile = now + settings.RECONCILE_INTERVAL
            self._stop.wait(0.05)

    def _reconcile(self, *, taking_over: bool = False) -> None:
        try:
            close_old_connections()
            partition_reconcile(self.partition, taking_over=taking_over)
        except Exception as exc:  # PostgreSQL or the broker is down: try again next round
            logger.warning("partition %s: reconcile failed: %s", self.partition, exc)
            connection.close()
