"""Who owns each partition and what its drains did lately: published by the owners, read by
`manage.py writes_status`, the metrics and the admin's partition page.

Each process that runs a partition's owner thread writes one field of the partition's Redis
hash `racefree:partition-status:<N>` (its host:pid), every heartbeat: whether it holds the
partition (the lease, on Redis brokers), since when, its drain state, and its drains over
the last minute. Readers ignore fields whose heartbeat is older than STALE_AFTER (a process
that died) and clear those older than an hour. A drain records what it did in
`drain_stats`, in the process that ran it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from core.redis_client import redis_client

STALE_AFTER = 5.0  # seconds without a heartbeat (published every second): that process is gone
_FORGET_AFTER = 3600.0
_WINDOW = 60.0


def status_key(partition: int) -> str:
    return f"racefree:partition-status:{partition}"


def process_name() -> str:
    """host:pid, as the request log's `applied_by` says it."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _DrainStats:
    last_at: float | None = None
    last_requests: int = 0
    last_seconds: float = 0.0
    recent: deque[tuple[float, int]] = field(default_factory=deque)  # (when, applied)

    def record(self, requests: int, seconds: float) -> None:
        now = time.time()
        self.last_at, self.last_requests, self.last_seconds = now, requests, seconds
        self.recent.append((now, requests))
        self.trim(now)

    def trim(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - _WINDOW:
            self.recent.popleft()

    def last_minute(self) -> int:
        self.trim(time.time())
        return sum(n for _, n in self.recent)


class DrainStats:
    """What the drains run in this process did, per partition (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[int, _DrainStats] = {}

    def record(self, partition: int, *, requests: int, seconds: float) -> None:
        with self._lock:
            self._stats.setdefault(partition, _DrainStats()).record(requests, seconds)

    def snapshot(self, partition: int) -> dict[str, Any]:
        with self._lock:
            stats = self._stats.get(partition) or _DrainStats()
            return {
                "last_drain_at": stats.last_at,
                "last_drain_requests": stats.last_requests,
                "last_drain_seconds": stats.last_seconds,
                "finished_last_minute": stats.last_minute(),
            }


drain_stats = DrainStats()


def partition_status_publish(
    partition: int, *, holds: bool, since: float, state: str | None
) -> None:
    """This process's view of `partition`, for the readers (raises RedisError)."""
    value = {
        "process": process_name(),
        "holds": holds,
        "since": since,
        "heartbeat": time.time(),
        "state": state,
        **drain_stats.snapshot(partition),
    }
    redis_client().hset(status_key(partition), process_name(), json.dumps(value))


def partition_status_withdraw(partition: int) -> None:
    """This process no longer runs `partition`'s owner (a clean stop)."""
    redis_client().hdel(status_key(partition), process_name())


def partition_statuses(partitions: range) -> dict[int, list[dict[str, Any]]]:
    """Every live process's view of each partition (raises RedisError when Redis is down)."""
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    for partition in partitions:
        pipe.hgetall(status_key(partition))
    now = time.time()
    out: dict[int, list[dict[str, Any]]] = {}
    for partition, fields in zip(partitions, pipe.execute(), strict=True):
        live = []
        for name, raw in fields.items():
            value = json.loads(raw)
            age = now - value["heartbeat"]
            if age > _FORGET_AFTER:
                client.hdel(status_key(partition), name)
            elif age <= STALE_AFTER:
                live.append(value)
        out[partition] = live
    return out


def partition_owner(views: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The process that owns a partition: the one holding its lease (Redis brokers), else
    (RabbitMQ, where the broker picks the active consumer) the one that drained last."""
    holders = [view for view in views if view["holds"]]
    if holders:
        return max(holders, key=lambda view: view["since"])
    drained = [view for view in views if view["last_drain_at"]]
    return max(drained, key=lambda view: view["last_drain_at"]) if drained else None
