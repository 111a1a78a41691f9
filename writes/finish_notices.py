"""Waiting for a write's outcome without polling the database (`?wait=`).

Every transaction that finishes writes NOTIFYs `racefree_finished` with "<object key>
<highest id finished>" (writes/services.py `_finish`), delivered on commit. A waiter for row
`id` of an object is woken by a notice for that object whose id is at least its own, reads
its row once, and goes back to waiting if that was only a hint (a row of the object accepted
earlier but committed later than its neighbours may still be pending).

Notices are remembered per object (a bounded map), so one that arrives between a write's
acceptance and its waiter's registration is not missed. While notices cannot be received,
`wait()` says so and the caller polls.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from core.pg_listener import listener

CHANNEL = "racefree_finished"
# Objects whose latest notice is remembered (an entry is a few dozen bytes).
_REMEMBERED = 50_000


class _Waiter:
    __slots__ = ("row_id", "event")

    def __init__(self, row_id: int) -> None:
        self.row_id = row_id
        self.event = threading.Event()


class FinishNotices:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: OrderedDict[str, int] = OrderedDict()
        self._waiters: dict[str, list[_Waiter]] = {}
        self._subscribed = False

    def listening(self) -> bool:
        """True while notices are received (subscribes on first use)."""
        if not self._subscribed:
            with self._lock:
                if not self._subscribed:
                    listener.subscribe(CHANNEL, self._on_notice, on_reset=self._on_reset)
                    self._subscribed = True
        return listener.listening(CHANNEL)

    def wait(self, object_key: str, row_id: int, timeout: float) -> bool:
        """Block until a notice says row `row_id` of `object_key` may be final (True), or
        `timeout` seconds pass (False)."""
        waiter = _Waiter(row_id)
        with self._lock:
            if self._latest.get(object_key, 0) >= row_id:
                return True
            self._waiters.setdefault(object_key, []).append(waiter)
        try:
            return waiter.event.wait(timeout)
        finally:
            with self._lock:
                waiters = self._waiters.get(object_key, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(object_key, None)

    def _on_notice(self, payload: str) -> None:
        object_key, _, raw_id = payload.rpartition(" ")
        if not raw_id.isdigit():
            return
        finished = int(raw_id)
        with self._lock:
            if finished > self._latest.get(object_key, 0):
                self._latest[object_key] = finished
                self._latest.move_to_end(object_key)
                while len(self._latest) > _REMEMBERED:
                    self._latest.popitem(last=False)
            for waiter in self._waiters.get(object_key, ()):
                if waiter.row_id <= finished:
                    waiter.event.set()

    def _on_reset(self) -> None:
        # Notices may have been missed: every waiter reads its row again.
        with self._lock:
            for waiters in self._waiters.values():
                for waiter in waiters:
                    waiter.event.set()


finish_notices = FinishNotices()
