"""The live worker processes of the cluster, in Redis: a sorted set of member ids scored by
their last heartbeat (Redis's own clock, so hosts' clocks may disagree). A member is live
while its heartbeat is younger than PARTITION_LEASE_TTL; a clean stop removes it at once, a
dead one ages out."""

from __future__ import annotations

import os
import socket
import uuid

from django.conf import settings

from core.redis_client import redis_client

MEMBERS_KEY = "racefree:members"


def member_id() -> str:
    """This process's id: host:pid:nonce/partitions (sorted order is the assignment's order;
    the partition count it runs with matters while a change of WRITE_PARTITIONS rolls out)."""
    host, nonce = socket.gethostname(), uuid.uuid4().hex[:6]
    return f"{host}:{os.getpid()}:{nonce}/{settings.WRITE_PARTITIONS}"


def member_partitions(member: str) -> int:
    """The WRITE_PARTITIONS a member runs with."""
    return int(member.rsplit("/", 1)[1])


def _now() -> float:
    seconds, micros = redis_client().time()
    return seconds + micros / 1e6


def member_heartbeat(member: str) -> list[str]:
    """Say `member` is alive; return the live members (itself included), sorted."""
    client = redis_client()
    now = _now()
    pipe = client.pipeline(transaction=False)
    pipe.zadd(MEMBERS_KEY, {member: now})
    pipe.zremrangebyscore(MEMBERS_KEY, "-inf", now - 10 * settings.PARTITION_LEASE_TTL)
    pipe.zrangebyscore(MEMBERS_KEY, now - settings.PARTITION_LEASE_TTL, "+inf")
    live = pipe.execute()[2]
    return sorted(value.decode() for value in live)


def member_leave(member: str) -> None:
    redis_client().zrem(MEMBERS_KEY, member)


def live_members() -> list[str]:
    now = _now()
    return sorted(
        value.decode()
        for value in redis_client().zrangebyscore(
            MEMBERS_KEY, now - settings.PARTITION_LEASE_TTL, "+inf"
        )
    )
