"""Publishing work to the partition queues.

Two dispatch modes (settings.WRITE_DISPATCH):
- "message": one Celery message per accepted write, named after its kind (`quotas.consume`,
  ...), published by the accepting process after commit;
- "coalesced": drains (`writes.drain_partition`). On PostgreSQL the accepting process
  publishes nothing: its INSERT notifies the partition's owner, which publishes a drain
  when none is queued or running (writes/wakeups.py). On the embedded SQLite demo fallback
  (no NOTIFY) the accepting process publishes one drain per partition it wrote to.

The Celery app is the one configured for the process (cookiecutter-django's wiring:
project/__init__.py loads workers/celery.py); the request log never imports the workers.
Everything here publishes *now*: call it after commit. `..._on_commit` is the safe default.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from dataclasses import dataclass

from celery import current_app
from django.conf import settings
from django.db import connection, transaction

from writes.counters import counter_add
from writes.kinds import object_type_for_kind

logger = logging.getLogger(__name__)

DRAIN_TASK = "writes.drain_partition"

# Messages this process published, by task name.
published: Counter[str] = Counter()


@dataclass
class PublishTicket:
    """Filled in after commit: the Celery task id that will apply the write (message mode;
    None in coalesced mode, where the partition's owner wakes a drain), or the error."""

    task_id: str | None = None
    error: str | None = None


def notifies_on_accept() -> bool:
    """True when accepting a write notifies its partition's owner (coalesced, PostgreSQL)."""
    return settings.WRITE_DISPATCH == "coalesced" and connection.vendor == "postgresql"


def write_requests_publish_on_commit(requests: list[object]) -> list[PublishTicket]:
    """Publish accepted writes when the current transaction commits (at once outside one):
    a message each, or (coalesced without NOTIFY) one drain per partition they touch.

    A broker failure is logged, not raised: the requests are already durable and the
    partition owners' reconcilers republish them.
    """
    tickets = [PublishTicket() for _ in requests]
    if notifies_on_accept():
        return tickets

    def publish() -> None:
        drained: set[int] = set()
        for request, ticket in zip(requests, tickets, strict=True):
            try:
                if settings.WRITE_DISPATCH == "message":
                    ticket.task_id = write_request_publish_rollback_unsafe(request)
                elif request.partition not in drained:
                    partition_drain_publish_rollback_unsafe(request.partition)
                    drained.add(request.partition)
            except Exception as exc:  # durable already: the reconciler will wake the partition
                logger.warning("publishing %s failed (%s); left to the reconciler", request, exc)
                ticket.error = f"{type(exc).__name__}: {exc}"

    transaction.on_commit(publish)
    return tickets


def write_request_publish_rollback_unsafe(request: object) -> str:
    """Publish one write's own message now. Rollback-unsafe: inside a transaction that later
    rolls back it announces a write that never existed (harmless, but a wasted message)."""
    object_type = object_type_for_kind(request.kind)
    raw_id = request.object_key.partition(":")[2]
    kwargs = {
        object_type.id_arg: int(raw_id) if raw_id.isdigit() else raw_id,
        **request.payload,
        "request_id": request.request_id,
    }
    current_app.send_task(request.kind, kwargs=kwargs, task_id=request.request_id)
    published[request.kind] += 1
    return request.request_id


def partition_drain_publish_rollback_unsafe(partition: int, *, countdown: float = 0.0) -> str:
    """Publish a drain of `partition` now (to run `countdown` seconds from now); return its
    task id. Rollback-unsafe as above."""
    task_id = uuid.uuid4().hex
    current_app.send_task(
        DRAIN_TASK,
        kwargs={"partition": partition},
        task_id=task_id,
        countdown=countdown or None,
    )
    published[DRAIN_TASK] += 1
    counter_add(partition=partition, name="drains_published")
    return task_id
