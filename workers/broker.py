"""Facts about the configured broker that the worker processes need."""

from __future__ import annotations

from django.conf import settings

from workers.celery import app


def broker_is_redis() -> bool:
    """True for redis:// and rediss:// brokers (which need partition leases)."""
    return settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://"))


def queue_depth(queue: str) -> int:
    """Messages waiting in a queue (not counting ones a worker has already reserved)."""
    with app.connection_for_read() as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue, passive=True).message_count
        except connection.channel_errors:  # the queue does not exist (yet): nothing waits
            return 0
