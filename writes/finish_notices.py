"""Waiting for a write's outcome without polling the database (`?wait=`).

Every transaction that finishes writes NOTIFYs `racefree_finished` (writes/services.py
`_finish`), delivered on commit, with the object, the highest request row id it finished
and, when they fit in a notification, each row's outcome. A waiter for row `id` of that
object is woken by a notice whose id is at least its own: with its outcome in the notice it
answers without reading the database; otherwise it reads its row once, and goes back to
waiting if the notice was only a hint (a row of the object accepted earlier but committed
later than its neighbours may still be pending).

Notices are remembered per object (a bounded map), so one that arrives between a write's
acceptance and its waiter's registration is not missed. While notices cannot be received,
`listening()` says so and callers poll.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.pg_listener import listener

CHANNEL = "racefree_finished"
# Objects whose latest notice is remembered (an entry is a few dozen bytes).
_REMEMBERED = 50_000
# Outcomes travel in the notice only for small groups (the ones `?wait=` callers are in:
# at most one per waiting request); a large group, under load, sends just its header.
_MAX_OUTCOMES = 32
_MAX_PAYLOAD = 4_000  # PostgreSQL refuses 8,000 bytes and more


def finish_notice(
    object_key: str, finished_at: datetime, rows: Sequence[tuple[int, str, dict[str, Any]]]
) -> str:
    """The payload telling waiters that `rows` (id, state, result) of `object_key` are final:
    a JSON header [object_key, highest id, finished_at], then on a second line, if small,
    the outcomes {id: [state, result]}. Listeners parse the second line only when somebody
    waits on that object."""
    top = max(row_id for row_id, _, _ in rows)
    header = json.dumps([object_key, top, finished_at.isoformat()])
    if len(rows) <= _MAX_OUTCOMES:
        outcomes = json.dumps({str(row_id): [state, result] for row_id, state, result in rows})
        if len(header) + len(outcomes) < _MAX_PAYLOAD:
            return f"{header}\n{outcomes}"
    return header


@dataclass(frozen=True)
class Notice:
    """What woke a waiter: its row's outcome if the notice carried it (else read the row)."""

    state: str | None = None
    result: dict[str, Any] | None = None
    finished_at: str | None = None


class _Waiter:
    __slots__ = ("row_id", "event", "notice")

    def __init__(self, row_id: int) -> None:
        self.row_id = row_id
        self.event = threading.Event()
        self.notice = Notice()


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

    def wait(self, object_key: str, row_id: int, timeout: float) -> Notice | None:
        """Block until a notice says row `row_id` of `object_key` may be final (the notice),
        or `timeout` seconds pass (None)."""
        waiter = _Waiter(row_id)
        with self._lock:
            if self._latest.get(object_key, 0) >= row_id:
                return Notice()  # it came before we asked: read the row
            self._waiters.setdefault(object_key, []).append(waiter)
        try:
            return waiter.notice if waiter.event.wait(timeout) else None
        finally:
            with self._lock:
                waiters = self._waiters.get(object_key, [])
                if waiter in waiters:
                    waiters.remove(waiter)
                if not waiters:
                    self._waiters.pop(object_key, None)

    def _on_notice(self, payload: str) -> None:
        header, _, body = payload.partition("\n")
        try:
            object_key, finished, finished_at = json.loads(header)
        except (ValueError, TypeError):
            return
        outcomes = None
        with self._lock:
            if finished > self._latest.get(object_key, 0):
                self._latest[object_key] = finished
                self._latest.move_to_end(object_key)
                while len(self._latest) > _REMEMBERED:
                    self._latest.popitem(last=False)
            for waiter in self._waiters.get(object_key, ()):
                if waiter.row_id <= finished:
                    if outcomes is None:
                        outcomes = json.loads(body) if body else {}
                    outcome = outcomes.get(str(waiter.row_id))
                    if outcome is not None:
                        waiter.notice = Notice(outcome[0], outcome[1], finished_at)
                    waiter.event.set()

    def _on_reset(self) -> None:
        # Notices may have been missed: every waiter reads its row again.
        with self._lock:
            for waiters in self._waiters.values():
                for waiter in waiters:
                    waiter.event.set()


finish_notices = FinishNotices()
