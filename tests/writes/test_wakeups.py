"""The drain state machine of an owned partition (writes/wakeups.py), in-process.

The protocol's promise: whatever the interleaving of notifications and a drain going idle,
every notified write is either seen by a running drain or gets a drain published for it.
"""

from __future__ import annotations

import random
import threading
import time

import pytest

from writes.wakeups import IDLE, QUEUED, RUNNING, PartitionWakeups

pytestmark = pytest.mark.django_db(transaction=True)  # the listener reads the test database


def test_notifications_move_the_state_and_ask_for_one_drain():
    wakeups = PartitionWakeups()
    wakeups.own(3)
    assert wakeups.state(3) == IDLE
    assert wakeups.wake(3) is True and wakeups.state(3) == QUEUED
    assert wakeups.take_wanted(3) is True and wakeups.take_wanted(3) is False
    assert wakeups.wake(3) is False  # one queued drain serves both writes
    with wakeups.draining(3) as window:
        assert wakeups.state(3) == RUNNING
        window.begin_scan()
        assert wakeups.wake(3) is False  # the running drain is told instead
        assert window.try_finish() is False  # ... and keeps draining
        window.begin_scan()
        assert window.try_finish() is True
        assert wakeups.state(3) == IDLE
    assert wakeups.wake(3) is True  # idle again: a new drain is asked for
    assert wakeups.wake(99) is False  # not owned here: nothing to do


def test_a_drain_queued_long_ago_that_never_started_here_is_published_again(monkeypatch):
    # A RabbitMQ standby's drains run on the active consumer, never here.
    from writes import wakeups as module

    wakeups = PartitionWakeups()
    wakeups.own(2)
    assert wakeups.wake(2) is True and wakeups.take_wanted(2)
    assert wakeups.wake(2) is False
    monkeypatch.setattr(module, "QUEUED_STALE", 0.0)
    assert wakeups.wake(2) is True and wakeups.take_wanted(2)


def test_a_forced_wake_while_running_queues_a_continuation():
    wakeups = PartitionWakeups()
    wakeups.own(1)
    with wakeups.draining(1):
        assert wakeups.wake(1, force=True) is True
    assert wakeups.state(1) == QUEUED  # not reset to idle by the drain's exit
    assert wakeups.take_wanted(1) is True


def test_no_notified_write_is_ever_left_without_a_drain():
    """Writers commit and notify; drains (started whenever a drain is asked for) take what
    is pending, then go idle by the protocol. 3,000 writes with random timing: at the end
    nothing is pending and no drain is running or asked for."""
    wakeups = PartitionWakeups()
    wakeups.own(0)
    lock = threading.Lock()
    pending = {"n": 0, "applied": 0}
    drains: list[threading.Thread] = []

    def drain() -> None:
        with wakeups.draining(0) as window:
            while True:
                window.begin_scan()
                with lock:
                    found, pending["n"] = pending["n"], 0
                    pending["applied"] += found
                if found:
                    continue
                time.sleep(random.random() * 0.0005)  # the gap a real drain has here
                if window.try_finish():
                    return

    def owner(stop: threading.Event) -> None:
        while not stop.is_set() or wakeups.take_wanted(0):
            if wakeups.take_wanted(0):
                thread = threading.Thread(target=drain)
                drains.append(thread)
                thread.start()
            time.sleep(0.0002)

    def writer(count: int) -> None:
        for _ in range(count):
            with lock:  # "commit"
                pending["n"] += 1
            wakeups.wake(0)  # "notify", after the commit
            time.sleep(random.random() * 0.0003)

    stop = threading.Event()
    owner_thread = threading.Thread(target=owner, args=(stop,))
    owner_thread.start()
    writers = [threading.Thread(target=writer, args=(1000,)) for _ in range(3)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    deadline = time.monotonic() + 10
    while wakeups.state(0) != IDLE and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    owner_thread.join()
    for thread in drains:
        thread.join()
    assert pending == {"n": 0, "applied": 3000}
    assert wakeups.state(0) == IDLE
    assert len(drains) < 3000  # drains served many writes each
