"""Throttling of write endpoints: API_WRITE_THROTTLE (e.g. "600/minute") per user.

Every write counts: a batch of N consumptions uses N of the budget (the request itself is
charged one by DRF, the batch view charges the other N-1 once it knows N).

A fixed-window counter in Redis: one pipelined INCR + EXPIRE per write, instead of DRF's
history list (a read and a pickled write of the whole list per request). It fails open:
when Redis is down, writes are still accepted (they are durable in PostgreSQL) rather than
answered with a 500.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from core.redis_client import redis_client

logger = logging.getLogger(__name__)


class WriteRateThrottle(BaseThrottle):
    """At most N writes per user (or client address) per window; 429 with Retry-After after."""

    scope = "writes"

    def __init__(self) -> None:
        rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]
        self.limit, self.window = SimpleRateThrottle.parse_rate(None, rate)
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        return self.allow_writes(request, 1)

    def allow_writes(self, request: Request, count: int) -> bool:
        """Charge `count` writes to the caller's window; False once the window is over budget."""
        now = time.time()
        window_start = int(now // self.window)
        who = request.user.pk if request.user and request.user.is_authenticated else None
        key = f"racefree:throttle:{who or self.get_ident(request)}:{window_start}"
        try:
            pipe = redis_client().pipeline(transaction=False)
            pipe.incrby(key, count)
            pipe.expire(key, self.window + 1)
            total = pipe.execute()[0]
        except Exception as exc:
            logger.warning("throttle store unavailable (%s); not throttling", exc)
            return True
        if total <= self.limit:
            return True
        if count > 1:
            # Refused writes are not applied: give a refused batch's charge back, so a
            # smaller batch can still use what is left of the window.
            try:
                redis_client().decrby(key, count)
            except Exception as exc:
                logger.warning("throttle store unavailable (%s)", exc)
        self.retry_after = (window_start + 1) * self.window - now
        return False

    def wait(self) -> float | None:
        return self.retry_after
