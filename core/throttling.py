"""Throttling of write endpoints: API_WRITE_THROTTLE (e.g. "600/minute") per user.

Every write counts: a batch of N consumptions uses N of the budget (the request itself is
charged one by DRF, the batch view charges the other N-1 once it knows N).

A fixed-window counter in Redis, checked and charged in one atomic step (a Lua script: charge
only if the total stays within the limit), so a batch over budget never makes a write that
fits look over budget, and nothing refused is ever charged. One round trip per request. It
fails open: when Redis is down, writes are still accepted (they are durable in PostgreSQL)
rather than answered with a 500.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from core.redis_client import redis_client

logger = logging.getLogger(__name__)

# KEYS[1]: the window's counter; ARGV: writes to charge, the limit, the key's lifetime.
# Returns what the window had used before; charges only if that plus the writes fits.
_CHARGE_IF_WITHIN = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local count = tonumber(ARGV[1])
if used + count <= tonumber(ARGV[2]) then
  redis.call('INCRBY', KEYS[1], count)
  if used == 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
end
return used
"""


class WriteRateThrottle(BaseThrottle):
    """At most N writes per user (or client address) per window; 429 with Retry-After after."""

    scope = "writes"

    def __init__(self, client: redis.Redis | None = None) -> None:
        rate = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"][self.scope]
        self.limit, self.window = SimpleRateThrottle.parse_rate(None, rate)
        self.client = client
        self.retry_after: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        return self.allow_writes(request, 1)

    def allow_writes(self, request: Request, count: int) -> bool:
        """Charge `count` writes to the caller's window if they fit in it; False (charging
        nothing) if they do not."""
        now = time.time()
        window_start = int(now // self.window)
        who = request.user.pk if request.user and request.user.is_authenticated else None
        key = f"racefree:throttle:{who or self.get_ident(request)}:{window_start}"
        try:
            # EVALSHA (and EVAL once more if Redis lost the script: a restart).
            script = (self.client or redis_client()).register_script(_CHARGE_IF_WITHIN)
            used = script(keys=[key], args=[count, self.limit, self.window + 1])
        except Exception as exc:
            logger.warning("throttle store unavailable (%s); not throttling", exc)
            return True
        if used + count <= self.limit:
            return True
        self.retry_after = (window_start + 1) * self.window - now
        return False

    def wait(self) -> float | None:
        return self.retry_after
