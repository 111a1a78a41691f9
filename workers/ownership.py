"""What a worker process does for the partitions it owns, beside consuming their queues, in
one background thread (`PartitionOwner`):

- in elastic mode (`run_workers --processes M`), take and give partitions as the cluster's
  live processes change (workers/membership.py, workers/assignment.py): a partition is
  consumed only once its lease is held, and given up after its current drain;
- publish a drain when an accepted write's notification finds a partition idle
  (coalesced dispatch; writes/wakeups.py decides when);
- renew each partition's lease and step down from a partition the moment its lease is lost;
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
from redis.exceptions import RedisError

from core.durations import duration_parse
from workers import time_limits
from workers.assignment import partition_assignment
from workers.broker import queue_depth
from workers.leases import PartitionLease, Renewal
from workers.membership import member_heartbeat, member_id, member_leave, member_partitions
from workers.routing import SHARED_QUEUE, queue_name
from writes.counters import counter_add
from writes.partition_status import partition_status_publish, partition_status_withdraw
from writes.publishing import partition_drain_publish_rollback_unsafe
from writes.selectors import partition_oldest_pending_age
from writes.services import write_requests_prune, write_requests_rehome
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
    """Holds this process's partitions: their leases, wake-ups, reconciler, status, pruning.

    Fixed mode (`partitions` given): the process was started for those partitions and holds
    their leases already (or, on RabbitMQ, the broker picks the active consumer: no lease);
    losing one ends the process (`on_lost`). Elastic mode (`partitions` None): the process
    heartbeats its membership, computes its share of the partitions from the live members,
    takes the leases of its share as they come free, and calls `consume(queue)` /
    `stop_consuming(queue)` as partitions come and go. `on_hung` is called if a task runs past
    the hard time limit (the process must end).
    """

    def __init__(
        self,
        partitions: list[int] | None = None,
        *,
        leases: dict[int, PartitionLease | None] | None = None,
        on_lost: Callable[[], None],
        on_hung: Callable[[], None],
        consume: Callable[[str], None] | None = None,
        stop_consuming: Callable[[str], None] | None = None,
        ready: threading.Event | None = None,
    ) -> None:
        super().__init__(name="partition-owner", daemon=True)
        self.elastic = partitions is None
        self.on_lost = on_lost
        self.on_hung = on_hung
        self.consume = consume or (lambda queue: None)
        self.stop_consuming = stop_consuming or (lambda queue: None)
        self.member = member_id() if self.elastic else None
        self.held: dict[int, _Held] = {}
        for partition in partitions or []:
            lease = (leases or {}).get(partition)
            self.held[partition] = _Held(partition, lease)
        self.target: set[int] = set(partitions or [])
        self._stop = threading.Event()
        self._wanted = threading.Event()
        self._next_membership = 0.0
        self._next_reconcile = time.monotonic() + settings.RECONCILE_INTERVAL
        self._next_status = 0.0
        self._next_prune = time.monotonic() + settings.PRUNE_INTERVAL
        self.stopped = threading.Event()
        self.ready = ready

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        if self.elastic:
            wakeups.owned_only = True  # drains of partitions not held here are skipped
        wakeups.on_wanted = self._wanted.set
        try:
            while self.ready is not None and not self.ready.wait(0.1):
                if self._stop.is_set():
                    return
            for held in self.held.values():
                self._take(held)
            while not self._stop.is_set():
                if not self._tick():
                    return
                self._wanted.wait(0.05)  # woken at once when a drain must be published
                self._wanted.clear()
        finally:
            self._give_up_everything()
            self.stopped.set()

    def _tick(self) -> bool:
        now = time.monotonic()
        for partition, held in list(self.held.items()):
            if wakeups.take_wanted(partition):
                self._publish(partition)
            if held.lease and now >= held.next_renewal:
                renewal = held.lease.renew()
                if renewal is Renewal.KEPT:
                    held.last_kept = now
                elif renewal is Renewal.LOST or now - held.last_kept > held.lease.ttl:
                    # Lost, or unconfirmed for a whole TTL: another process may own it by now.
                    logger.error("partition %s: lease lost (%s)", partition, renewal.value)
                    if not self.elastic:
                        self.on_lost()
                        return False
                    self._drop(partition, release=False)
                    continue
                held.next_renewal = now + held.lease.ttl / 3
        running_for = time_limits.task_running_for()
        if running_for is not None and running_for > settings.CELERY_TASK_TIME_LIMIT:
            logger.error(
                "a task has run %.0fs, past the hard time limit; giving partitions %s up",
                running_for,
                sorted(self.held),
            )
            self.on_hung()
            return False
        if self.elastic and now >= self._next_membership:
            self._rebalance()
            # Quicker while partitions we should own are still held by others.
            pending = self.target - set(self.held)
            self._next_membership = now + (
                settings.PARTITION_STANDBY_POLL if pending else settings.PARTITION_LEASE_TTL / 3
            )
        if now >= self._next_reconcile:
            for partition in list(self.held):
                self._reconcile(partition)
            if 0 in self.held:  # one process looks for partitions that no longer exist
                self._rehome()
            self._next_reconcile = now + settings.RECONCILE_INTERVAL
        if now >= self._next_status:
            for partition, held in list(self.held.items()):
                self._publish_status(partition, held)
            self._next_status = now + 1.0
        if now >= self._next_prune:
            for partition in list(self.held):
                self._prune(partition)
            self._next_prune = now + settings.PRUNE_INTERVAL
        return True

    # --- elastic mode: taking and giving partitions -------------------------------------

    def _rebalance(self) -> None:
        try:
            members = member_heartbeat(self.member)
        except RedisError as exc:  # keep what we hold; leases decide if Redis stays away
            logger.warning("membership unavailable: %s", exc)
            return
        counts = {member: member_partitions(member) for member in members}
        largest = max(counts.values(), default=settings.WRITE_PARTITIONS)
        share = partition_assignment(members, largest, counts=counts).get(self.member, [])
        self.target = set(share)
        for partition in sorted(set(self.held) - self.target):
            self._drop(partition, release=True)
        for partition in sorted(self.target - set(self.held)):
            lease = PartitionLease(partition)
            if lease.try_acquire():
                held = _Held(partition, lease)
                self.held[partition] = held
                self._take(held)

    def _take(self, held: _Held) -> None:
        """Start working a partition whose lease is held: consume its queue, drain what its
        predecessor left."""
        wakeups.own(held.partition)
        held.since = time.time()
        self.consume(queue_name(held.partition))
        logger.info("partition %s: taken", held.partition)
        self._reconcile(held.partition, taking_over=True)

    def _drop(self, partition: int, *, release: bool) -> None:
        """Stop working a partition: no new messages, its running drain finishes its group,
        then (`release`) its lease goes to whoever the assignment gives it to."""
        held = self.held.pop(partition)
        with contextlib.suppress(Exception):
            self.stop_consuming(queue_name(partition))
        wakeups.release(partition)
        deadline = time.monotonic() + settings.CELERY_TASK_TIME_LIMIT
        while wakeups.state(partition) == "running" and time.monotonic() < deadline:
            time.sleep(0.02)
        wakeups.disown(partition)
        if release and held.lease:
            held.lease.release()
        with contextlib.suppress(Exception):
            partition_status_withdraw(partition)
        logger.info("partition %s: given up", partition)

    def _give_up_everything(self) -> None:
        # Leave first: the others count without us as soon as our leases come free.
        if self.member:
            with contextlib.suppress(Exception):
                member_leave(self.member)
        for partition in list(self.held):
            with contextlib.suppress(Exception):
                self._drop(partition, release=True)

    # --- every partition held ---------------------------------------------------------------

    def _publish(self, partition: int) -> None:
        try:
            partition_drain_publish_rollback_unsafe(partition)
        except Exception as exc:  # the broker is down: the next write or the reconciler retries
            logger.warning("partition %s: publishing a drain failed: %s", partition, exc)
            wakeups.publish_failed(partition)

    def _publish_status(self, partition: int, held: _Held) -> None:
        try:
            partition_status_publish(
                partition,
                holds=held.lease is not None,
                since=held.since,
                state=wakeups.state(partition),
            )
        except Exception as exc:  # Redis down: the status is stale, nothing else is
            logger.debug("partition %s: status not published: %s", partition, exc)

    def _prune(self, partition: int) -> None:
        try:
            close_old_connections()
            deleted = write_requests_prune(
                older_than=duration_parse(settings.REQUEST_LOG_RETENTION),
                partition=partition,
                batch_size=settings.REQUEST_LOG_PRUNE_BATCH,
                max_batches=10,
            )
            if deleted:
                logger.info("partition %s: pruned %s final request rows", partition, deleted)
        except Exception as exc:  # PostgreSQL down: next time
            logger.warning("partition %s: pruning failed: %s", partition, exc)
            connection.close()

    def _rehome(self) -> None:
        try:
            moved = write_requests_rehome()
            if moved:
                logger.warning("moved %s writes out of partitions that no longer exist", moved)
        except Exception as exc:
            logger.warning("re-homing failed: %s", exc)
            connection.close()

    def _reconcile(self, partition: int, *, taking_over: bool = False) -> None:
        try:
            close_old_connections()
            partition_reconcile(partition, taking_over=taking_over)
        except Exception as exc:  # PostgreSQL or the broker is down: try again next round
            logger.warning("partition %s: reconcile failed: %s", partition, exc)
            connection.close()


class _Held:
    """A partition this process works, and its lease (None: the broker decides, RabbitMQ's
    single-active-consumer in fixed mode)."""

    def __init__(self, partition: int, lease: PartitionLease | None) -> None:
        self.partition = partition
        self.lease = lease
        self.since = time.time()
        self.last_kept = time.monotonic()
        self.next_renewal = time.monotonic()
