"""Per-object routing: an object key picks one of N partition queues, the same everywhere.

`partition_for("quotas.quota:7")` (writes/partitions.py) is a stable hash, so every producer
process on every host sends an object's writes to the same queue `writes.N`, and the one
active consumer of that queue applies them one after another. This module declares the
queues and routes tasks to them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from kombu import Exchange, Queue

from writes.partitions import partition_for
from writes.publishing import DRAIN_TASK

WRITES_EXCHANGE = "writes"
# Where every write goes when routing is bypassed (settings.WRITE_ROUTING = "shared").
SHARED_QUEUE = "writes.shared"
# What an elastic worker process consumes before (and besides) its partitions: nothing is
# ever sent there.
IDLE_QUEUE = "writes.idle"
DEFAULT_QUEUE = "celery"


def queue_name(partition: int) -> str:
    """`writes.<partition>`."""
    return f"writes.{partition}"


def parse_partitions(spec: str) -> list[int]:
    """Parse an operator's partition list: "0-7", "0,2,4", "3", "0-3,6"."""
    partitions: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        low, high = int(first), int(last or first)
        if low > high:
            raise ValueError(f"bad partition range {part!r}")
        partitions.update(range(low, high + 1))
    if not partitions:
        raise ValueError("no partitions given")
    count = settings.WRITE_PARTITIONS
    out_of_range = sorted(p for p in partitions if not 0 <= p < count)
    if out_of_range:
        raise ValueError(f"partitions {out_of_range} outside 0-{count - 1} (WRITE_PARTITIONS)")
    return sorted(partitions)


def _broker_is_amqp() -> bool:
    return settings.CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://"))


def write_queues() -> list[Queue]:
    """Every queue the system uses, declared once for producers and workers alike.

    On RabbitMQ each partition queue is a single-active-consumer queue: a second worker on
    it is a hot standby that RabbitMQ switches to when the first one's connection drops.
    """
    exchange = Exchange(WRITES_EXCHANGE, type="direct")
    arguments = {"x-single-active-consumer": True} if _broker_is_amqp() else None
    queues = [
        Queue(queue_name(p), exchange, routing_key=queue_name(p), queue_arguments=arguments)
        for p in range(settings.WRITE_PARTITIONS)
    ]
    queues.append(Queue(SHARED_QUEUE, exchange, routing_key=SHARED_QUEUE))
    queues.append(Queue(IDLE_QUEUE, exchange, routing_key=IDLE_QUEUE))
    queues.append(Queue(DEFAULT_QUEUE, Exchange(DEFAULT_QUEUE), routing_key=DEFAULT_QUEUE))
    return queues


def route_task(
    name: str,
    args: Any,
    kwargs: dict[str, Any],
    options: dict[str, Any],
    task: Any = None,
    **kw: Any,
) -> dict[str, str] | None:
    """Celery router: write tasks go to their object's partition queue; others to default."""
    from writes.kinds import object_type_for_kind

    if name == DRAIN_TASK:
        partition = int(kwargs["partition"])
    else:
        try:
            object_type = object_type_for_kind(name)
        except KeyError:
            return None
        partition = partition_for(object_type.key_for(kwargs[object_type.id_arg]))
    if settings.WRITE_ROUTING == "shared":
        return {"queue": SHARED_QUEUE}
    return {"queue": queue_name(partition)}
