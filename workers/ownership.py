"""What a partition's owner does beside consuming its queue, in one background thread:

- publish a drain when an accepted write's notification finds the partition idle
  (coalesced dispatch; writes/wakeups.py decides when);
- renew the partition lease (Redis brokers) and step down the moment it is lost;
- reconcile: when a write of the partition has been pending longer than RECONCILE_AFTER and
  the queue is empty (its message was lost: a broker restart, a crash before the ack), or
  longer than RECONCILE_FORCE_AFTER in any case, publish a drain of the partition;
- say who owns the partition and what its drains did (writes/partition_status.py), every
  second;
- prune: delete the partition's final request rows older than REQUEST_LOG_RETENTION, a
  bounded batch every PRUNE_INTERVAL.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection

from core.durations import duration_parse
from workers import time_limits
from workers.broker import queue_depth
from workers.leases import PartitionLease, Renewal
from workers.routing import SHARED_QUEUE, queue_name
from writes.counters import counter_add
from writes.partition_status import partition_status_publish, partition_status_withdraw
from writes.publishing import partition_drain_publish_rollback_unsafe
from writes.selectors import partition_oldest_pending_age
from writes.services import write_requests_prune
from writes.wakeups import wakeups

logger = logging.getLogger(__name__)


def partition_reconcile(partition: int, *, taking_over: bool = False) -> bool:
    """Have a drain of `partition` published if a write there waits too long (True).

    `taking_over`: a new owner drains whatever its predecessor left, at once.
    """
    age = partition_oldest_pending_age(partition=partition)
    if age is None:
        return False
    if taking_over:
        return _wake(partition)
    if age < settings.RECONCILE_AFTER:
        return False
    queue = SHARED_QUEUE if settings.WRITE_ROUTING == "shared" else queue_name(partition)
    if age < settings.RECONCILE_FORCE_AFTER and queue_depth(queue) > 0:
        return False  # a backlog, not a loss: the queued messages will get there
    logger.warning(
        "partition %s: a write has waited %.1fs with no message on its way; publishing a drain",
        partition,
        age,
    )
    counter_add(partition=partition, name="reconciler_republished")
    return _wake(partition)


def _wake(partition: int) -> bool:
    # Owned here: the owner thread publishes (and knows a drain is queued); otherwise now.
    if not wakeups.wake(partition, force=True):
        partition_drain_publish_rollback_unsafe(partition)
    return True


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
        self.since = time.time()
        self._next_status = 0.0
        self._next_prune = time.monotonic() + settings.PRUNE_INTERVAL

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        renew_every = self.lease.ttl / 3 if self.lease else None
        last_kept = time.monotonic()
        next_renewal = time.monotonic()
        next_reconcile = time.monotonic() + settings.RECONCILE_INTERVAL
        wanted = wakeups.own(self.partition)
        self.since = time.time()
        try:
            self._reconcile(taking_over=True)
            self._loop(wanted, renew_every, last_kept, next_renewal, next_reconcile)
        finally:
            wakeups.disown(self.partition)
            with contextlib.suppress(Exception):
                partition_status_withdraw(self.partition)

    def _loop(
        self,
        wanted: threading.Event,
        renew_every: float | None,
        last_kept: float,
        next_renewal: float,
        next_reconcile: float,
    ) -> None:
        while not self._stop.is_set():
            self._publish_wanted()
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
            if now >= self._next_status:
                self._publish_status()
                self._next_status = now + 1.0
            if now >= self._next_prune:
                self._prune()
                self._next_prune = now + settings.PRUNE_INTERVAL
            wanted.wait(0.05)  # woken at once when a drain must be published

    def _publish_status(self) -> None:
        try:
            partition_status_publish(
                self.partition,
                holds=self.lease is not None,
                since=self.since,
                state=wakeups.state(self.partition),
            )
        except Exception as exc:  # Redis down: the status is stale, nothing else is
            logger.debug("partition %s: status not published: %s", self.partition, exc)

    def _prune(self) -> None:
        try:
            close_old_connections()
            deleted = write_requests_prune(
                older_than=duration_parse(settings.REQUEST_LOG_RETENTION),
                partition=self.partition,
                batch_size=settings.REQUEST_LOG_PRUNE_BATCH,
                max_batches=10,
            )
            if deleted:
                logger.info("partition %s: pruned %s final request rows", self.partition, deleted)
        except Exception as exc:  # PostgreSQL down: next time
            logger.warning("partition %s: pruning failed: %s", self.partition, exc)
            connection.close()

    def _publish_wanted(self) -> None:
        if not wakeups.take_wanted(self.partition):
            return
        try:
            partition_drain_publish_rollback_unsafe(self.partition)
        except Exception as exc:  # the broker is down: the next write or the reconciler retries
            logger.warning("partition %s: publishing a drain failed: %s", self.partition, exc)
            wakeups.publish_failed(self.partition)

    def _reconcile(self, *, taking_over: bool = False) -> None:
        try:
            close_old_connections()
            partition_reconcile(self.partition, taking_over=taking_over)
        except Exception as exc:  # PostgreSQL or the broker is down: try again next round
            logger.warning("partition %s: reconcile failed: %s", self.partition, exc)
            connection.close()
