"""Which partition an object's writes belong to: `partition_for("quotas.quota:7")`.

A stable hash (blake2b, never Python's salted `hash()`), so every process on every host puts
an object's writes in the same partition, whose one owner applies them in order.
"""

from __future__ import annotations

import hashlib

from django.conf import settings


def partition_for(key: str, partitions: int | None = None) -> int:
    """The partition (0…N-1) of an object key such as `tagging.image:42`."""
    count = settings.WRITE_PARTITIONS if partitions is None else partitions
    if count < 1:
        raise ValueError(f"partitions must be at least 1, not {count}")
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count
