"""Waking a partition's drain when a write is accepted (coalesced dispatch).

The INSERT that accepts writes also NOTIFYs `racefree_writes` with the partitions it wrote
to, and PostgreSQL delivers that when, and only if, the transaction commits: the wake-up is
as durable as the write, whoever accepted it (the API, a user's own view inside its own
transaction, a script). No web process publishes anything to the broker.

In a process that owns partitions, each owned partition has a drain state, moved by those
notifications:

- idle: a notification makes it `queued`, and the owner thread publishes one drain task;
- queued: nothing more (the queued drain will see the write);
- running: the running drain is told more arrived, and keeps going instead of stopping.

A running drain that finds nothing lingers up to DRAIN_LINGER seconds for a notification
before going idle. Going idle happens under the same lock as a notification's dispatch, and
a drain that finds a notification dispatched before that keeps draining; one dispatched
after it publishes a new drain. So no accepted write is left with no drain on its way, and
under load one drain task runs for many writes (each Celery message costs far more than a
write: docs/BENCHMARKS.md).

What notifications cannot cover (the listener reconnecting, a broker that loses its
messages, a process that dies) the owner's reconciler does: it publishes a drain for any
write pending longer than RECONCILE_AFTER.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from core.pg_listener import listener

CHANNEL = "racefree_writes"
IDLE, QUEUED, RUNNING = "idle", "queued", "running"
# A drain queued this long ago that has not started here is published again on the next
# notification (normally one starts within milliseconds).
QUEUED_STALE = 1.0


@dataclass
class _Partition:
    state: str = IDLE
    queued_at: float = 0.0
    # Being given up (elastic ownership): its drain stops at its next group, lingers no more.
    releasing: bool = False
    # Set by a notification while a drain runs: something arrived since its last scan.
    more: threading.Event = field(default_factory=threading.Event)
    # Set when a drain must be published; the owner thread waits on it.
    wanted: threading.Event = field(default_factory=threading.Event)


class DrainWindow:
    """What a running drain asks of its partition's state (nothing, if not owned here)."""

    def __init__(self, wakeups: PartitionWakeups, partition: int) -> None:
        self._wakeups = wakeups
        self._partition = partition

    def begin_scan(self) -> None:
        """About to look for pending writes: forget notifications of writes it will see."""
        state = self._wakeups._get(self._partition)
        if state is not None:
            state.more.clear()

    def busy(self) -> bool:
        """True if writes were notified since the last scan began (the partition is busy)."""
        state = self._wakeups._get(self._partition)
        return state is not None and state.more.is_set()

    def linger(self, seconds: float) -> bool:
        """Wait up to `seconds` for a write to be accepted; True if one was. Not while the
        partition is being given up, nor while another partition of this process waits."""
        state = self._wakeups._get(self._partition)
        if state is None or seconds <= 0 or not listener.listening(CHANNEL):
            return False
        if state.releasing or self.others_waiting():
            return False
        return state.more.wait(seconds) and not state.releasing

    def releasing(self) -> bool:
        """The partition is being given up: stop after the current group."""
        state = self._wakeups._get(self._partition)
        return state is not None and state.releasing

    def others_waiting(self) -> bool:
        """A drain of another partition of this process is queued behind this one (one
        process, one drain at a time: this one should make way)."""
        return self._wakeups.queued_besides(self._partition)

    def try_finish(self) -> bool:
        """Go idle, unless a write was notified meanwhile (then: keep draining)."""
        return self._wakeups._try_finish(self._partition)


class PartitionWakeups:
    """The drain state of every partition this process owns."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partitions: dict[int, _Partition] = {}
        self._subscribed = False
        # Elastic ownership: drains of partitions this process does not hold are skipped
        # (a message reserved before the partition moved; its new owner drains it).
        self.owned_only = False
        # Called (in the notifying thread) when a drain must be published: the owner thread.
        self.on_wanted: Callable[[], None] | None = None

    def own(self, partition: int) -> threading.Event:
        """This process now owns `partition`; returns the event set when a drain of it must
        be published (see `take_wanted`)."""
        with self._lock:
            state = self._partitions[partition] = _Partition()
            subscribe = not self._subscribed
            self._subscribed = True
        if subscribe:
            listener.subscribe(CHANNEL, self._on_notify, on_reset=self._on_reset)
        return state.wanted

    def release(self, partition: int) -> None:
        """`partition` is being given up: its running drain stops after its current group."""
        with self._lock:
            state = self._partitions.get(partition)
            if state is not None:
                state.releasing = True
                state.more.set()

    def may_drain(self, partition: int) -> bool:
        """False for a partition this process must leave alone (elastic mode, not held)."""
        state = self._get(partition)
        if state is None:
            return not self.owned_only
        return not state.releasing

    def queued_besides(self, partition: int) -> bool:
        with self._lock:
            return any(
                state.state == QUEUED
                for other, state in self._partitions.items()
                if other != partition
            )

    def disown(self, partition: int) -> None:
        with self._lock:
            self._partitions.pop(partition, None)

    def listening(self) -> bool:
        """True while accepted writes' notifications are being received."""
        return listener.listening(CHANNEL)

    def wake(self, partition: int, *, force: bool = False) -> bool:
        """A write of `partition` is pending: have a drain published unless one is queued
        (or, without `force`, running). Returns True if one is to be published."""
        with self._lock:
            state = self._partitions.get(partition)
            if state is None or state.releasing:
                return False
            if not force and state.state == RUNNING:
                state.more.set()
                return False
            # Queued long ago and never started here (another process consumes the queue: a
            # RabbitMQ standby; or the message was lost): publish again.
            stale = time.monotonic() - state.queued_at >= QUEUED_STALE
            if not force and state.state == QUEUED and not stale:
                return False
            state.state = QUEUED
            state.queued_at = time.monotonic()
            state.wanted.set()
        if self.on_wanted is not None:
            self.on_wanted()
        return True

    def take_wanted(self, partition: int) -> bool:
        """True (once) if a drain of `partition` must be published now."""
        state = self._get(partition)
        if state is None or not state.wanted.is_set():
            return False
        state.wanted.clear()
        return True

    def publish_failed(self, partition: int) -> None:
        """The drain could not be published: the next notification (or the reconciler)
        tries again."""
        with self._lock:
            state = self._partitions.get(partition)
            if state is not None and state.state == QUEUED:
                state.state = IDLE

    def state(self, partition: int) -> str | None:
        """idle / queued / running, or None if this process does not own `partition`."""
        state = self._get(partition)
        return None if state is None else state.state

    @contextmanager
    def draining(self, partition: int) -> Iterator[DrainWindow]:
        """Mark a drain of `partition` running for the duration of the block."""
        with self._lock:
            state = self._partitions.get(partition)
            if state is not None:
                state.state = RUNNING
        try:
            yield DrainWindow(self, partition)
        finally:
            with self._lock:
                state = self._partitions.get(partition)
                # A drain that asked for its own continuation leaves it queued.
                if state is not None and state.state == RUNNING:
                    state.state = IDLE

    def _get(self, partition: int) -> _Partition | None:
        return self._partitions.get(partition)

    def _try_finish(self, partition: int) -> bool:
        with self._lock:
            state = self._partitions.get(partition)
            if state is None:
                return True
            if state.more.is_set():
                return False
            if state.state == RUNNING:
                state.state = IDLE
            return True

    def _on_notify(self, payload: str) -> None:
        for part in payload.split(","):
            if part.isdigit():
                self.wake(int(part))

    def _on_reset(self) -> None:
        # Notifications may have been missed while disconnected: look at every partition.
        with self._lock:
            owned = list(self._partitions)
        for partition in owned:
            self.wake(partition)


wakeups = PartitionWakeups()
