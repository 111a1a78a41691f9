"""PostgreSQL notifications for the whole process: one LISTEN connection in a daemon thread.

Subscribers name a channel and a callback (called in the listener thread with the payload:
keep it short) and, optionally, an `on_reset` called whenever notifications may have been
missed: on every (re)connection, after LISTEN is in place. While `listening(channel)` is
False (not started yet, PostgreSQL unreachable, a new channel not yet listened to) callers
must not rely on notifications and fall back (read the database, poll).

NOTIFY is transactional: a notification is delivered when, and only if, the transaction that
sent it commits. That is what makes it safe to invalidate a cache or wake a waiter with.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

import psycopg
from django.db import connections

logger = logging.getLogger(__name__)

# How long the listener waits for notifications before checking its connection and new
# channels; a dead connection is found within this long plus a round trip.
_POLL_SECONDS = 1.0
_PING_EVERY = 5.0


class PgListener:
    """LISTEN on a dedicated connection (never Django's: its connections belong to threads
    that run requests and tasks) and dispatch notifications to subscribers."""

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias
        self._lock = threading.Lock()
        self._handlers: dict[str, list[Callable[[str], None]]] = {}
        self._reset_handlers: list[Callable[[], None]] = []
        self._listening: frozenset[str] = frozenset()
        self._pid: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def subscribe(
        self,
        channel: str,
        on_notify: Callable[[str], None],
        *,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        """Call `on_notify(payload)` for every notification on `channel` from now on."""
        with self._lock:
            self._handlers.setdefault(channel, []).append(on_notify)
            if on_reset is not None:
                self._reset_handlers.append(on_reset)
        self.ensure_started()

    def listening(self, channel: str) -> bool:
        """True while notifications of `channel` are being received (starts the thread)."""
        self.ensure_started()
        return channel in self._listening

    def ensure_started(self) -> None:
        """Start the listener thread in this process (once; again after a fork)."""
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._listening = frozenset()
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pg-listener", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the connection and end the thread (tests, before dropping their database);
        the next use starts it again."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pid = None
        self._listening = frozenset()

    def _run(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self._listen_until_broken()
            except Exception as exc:  # PostgreSQL down or restarting: retry, say so once
                if self._listening or backoff == 0.1:
                    logger.warning("notifications unavailable (%s); reconnecting", exc)
            self._listening = frozenset()
            self._stop.wait(backoff)
            backoff = min(backoff * 2, 5.0)

    def _listen_until_broken(self) -> None:
        params = connections[self.alias].get_connection_params()
        with psycopg.connect(**params, autocommit=True) as conn:
            last_ping = time.monotonic()
            while not self._stop.is_set():
                with self._lock:
                    wanted = frozenset(self._handlers)
                new = wanted - self._listening
                for channel in sorted(new):
                    conn.execute(f'LISTEN "{channel}"')
                if new:
                    self._listening = wanted
                    self._reset()
                for notify in conn.notifies(timeout=_POLL_SECONDS):
                    self._dispatch(notify.channel, notify.payload)
                if time.monotonic() - last_ping > _PING_EVERY:
                    conn.execute("SELECT 1")  # a silently dead connection raises here
                    last_ping = time.monotonic()

    def _dispatch(self, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                logger.exception("notification handler for %s failed", channel)

    def _reset(self) -> None:
        for handler in list(self._reset_handlers):
            try:
                handler()
            except Exception:
                logger.exception("notification reset handler failed")


listener = PgListener()
