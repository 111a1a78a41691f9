"""The Redis client for coordination (leases, throttling, counters): settings.REDIS_URL."""

from functools import cache

import redis
from django.conf import settings


@cache
def redis_client() -> redis.Redis:
    """One client (and connection pool) per process; redis-py resets the pool after a fork."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
