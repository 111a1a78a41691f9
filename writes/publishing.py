"""Publishing accepted writes to the partition queues.

Two dispatch modes (settings.WRITE_DISPATCH):
- "message": one Celery message per write, named after its kind (`quotas.consume`, ...);
- "coalesced": a wake-up (`writes.drain_partition`) for the write's partition, published only
  when none is already queued or running for it, so under load messages are far fewer than
  writes while a lone write still reaches its worker at once.

Everything here publishes *now*: call it after commit. `..._on_commit` is the safe default.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from redis.exceptions import RedisError

from workers.celery import app as celery_app
from workers.redis_client import redis_client
from workers.routing import DRAIN_TASK
from writes.kinds import object_type_for_kind

logger = logging.getLogger(__name__)

# Messages this process published, by task name (read by the stress tool and benchmarks).
published: Counter[str] = Counter()

# A wake-up flag outlives a lost wake-up message by at most this long; the reconciler
# republishes sooner anyway.
WAKE_FLAG_TTL = 60


@dataclass
class PublishTicket:
    """Filled in after commit: the Celery task id that will apply the write, or the error."""

    task_id: str | None = None
    error: str | None = None


def wake_flag_key(partition: int) -> str:
    """Redis key whose presence means a drain of `partition` is queued or running."""
    return f"racefree:wake:writes.{partition}"


def write_requests_publish_on_commit(requests: list[object]) -> list[PublishTicket]:
    """Publish accepted writes when the current transaction commits (at once outside one):
    a message each, or (coalesced) one wake-up per partition they touch.

    A broker or cache failure is logged, not raised: the requests are already durable and the
    partition owners' reconcilers republish them.
    """
    tickets = [PublishTicket() for _ in requests]

    def publish() -> None:
        woken: dict[int, str | None] = {}
        for request, ticket in zip(requests, tickets, strict=True):
            try:
                if settings.WRITE_DISPATCH != "message" and request.partition in woken:
                    ticket.task_id = woken[request.partition]
                    continue
                ticket.task_id = write_request_publish_rollback_unsafe(request)
                woken[request.partition] = ticket.task_id
            except Exception as exc:  # durable already: the reconciler will wake the partition
                logger.warning("publishing %s failed (%s); left to the reconciler", request, exc)
                ticket.error = f"{type(exc).__name__}: {exc}"

    transaction.on_commit(publish)
    return tickets


def write_request_publish_rollback_unsafe(request: object) -> str | None:
    """Publish a write now. Rollback-unsafe: inside a transaction that later rolls back it
    announces a write that never existed (harmless, but a wasted message)."""
    if settings.WRITE_DISPATCH == "message":
        object_type = object_type_for_kind(request.kind)
        raw_id = request.object_key.partition(":")[2]
        kwargs = {
            object_type.id_arg: int(raw_id) if raw_id.isdigit() else raw_id,
            **request.payload,
            "request_id": request.request_id,
        }
        celery_app.send_task(request.kind, kwargs=kwargs, task_id=request.request_id)
        published[request.kind] += 1
        return request.request_id
    return partition_wake_rollback_unsafe(request.partition)


def partition_wake_rollback_unsafe(partition: int, *, force: bool = False) -> str | None:
    """Publish a drain of `partition` unless one is already queued; return its task id.

    `force` publishes even if a flag says one is queued (the reconciler: that message may
    have been lost with a broker restart).
    """
    key = wake_flag_key(partition)
    task_id = uuid.uuid4().hex
    client = redis_client()
    if force:
        client.set(key, task_id, ex=WAKE_FLAG_TTL)
    else:
        # One round trip: set the flag unless present, and learn the queued wake-up's id.
        queued = client.set(key, task_id, ex=WAKE_FLAG_TTL, nx=True, get=True)
        if queued is not None:
            return queued.decode()
    try:
        celery_app.send_task(DRAIN_TASK, kwargs={"partition": partition}, task_id=task_id)
        published[DRAIN_TASK] += 1
    except Exception:
        client.delete(key)  # let the next write try again
        raise
    return task_id


def partition_wake_flag_clear(partition: int) -> None:
    """Called by a drain that found nothing to do: writes accepted from now on publish a new
    wake-up."""
    try:
        redis_client().delete(wake_flag_key(partition))
    except RedisError as exc:  # a stale flag only delays the next wake-up until the reconciler
        logger.warning("could not clear wake-up flag of partition %s: %s", partition, exc)
