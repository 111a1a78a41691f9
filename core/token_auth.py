"""Token authentication without a database round trip per request.

DRF's TokenAuthentication reads the token and its user on every request: for a small write
that read costs more than the write's own acceptance (docs/BENCHMARKS.md). Here each process
keeps the tokens it has seen, with their users (and the permissions Django caches on them),
and forgets them all whenever PostgreSQL says anything they depend on changed: triggers on
the token, user, group and permission tables NOTIFY `racefree_auth` (core/migrations), so
a deleted token, a deactivated user or a withdrawn permission stops working as soon as the
notification arrives (milliseconds), whoever changed it and however (admin, ORM, raw SQL).

While notifications cannot be received (not connected yet, PostgreSQL restarting) nothing is
served from the cache: every request reads the database, as DRF's own class does. Entries
also expire after AUTH_CACHE_SECONDS, in case a notification is lost without the connection
noticing.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from rest_framework.authentication import TokenAuthentication

from core.pg_listener import listener

AUTH_CHANNEL = "racefree_auth"
_MAX_ENTRIES = 10_000


class _TokenCache:
    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Any, Any]] = {}
        self._generation = 0
        self._subscribed = False
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[Any, Any] | None:
        if not self._ready():
            return None
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1], entry[2]

    def generation(self) -> int:
        return self._generation

    def put(self, key: str, user: Any, token: Any, generation: int) -> None:
        """Keep what was read, unless something changed since the read began."""
        if not self._ready():
            return
        with self._lock:
            if generation != self._generation:
                return
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + settings.AUTH_CACHE_SECONDS, user, token)

    def clear(self, payload: str = "") -> None:
        with self._lock:
            self._generation += 1
            self._entries.clear()

    def _ready(self) -> bool:
        if not self._subscribed:
            with self._lock:
                if not self._subscribed:
                    listener.subscribe(AUTH_CHANNEL, self.clear, on_reset=self.clear)
                    self._subscribed = True
        return listener.listening(AUTH_CHANNEL)


token_cache = _TokenCache()


class CachedTokenAuthentication(TokenAuthentication):
    """DRF's TokenAuthentication (same header, same errors), served from a per-process cache
    that PostgreSQL invalidates. The user object is shared by the requests of its token:
    treat `request.user` as read-only."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        cached = token_cache.get(key)
        if cached is not None:
            return cached
        generation = token_cache.generation()
        user, token = super().authenticate_credentials(key)
        token_cache.put(key, user, token, generation)
        return user, token
