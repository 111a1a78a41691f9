"""Which live worker process owns which partitions: the same answer in every process.

Every member computes the assignment from the same inputs (the sorted list of live members,
the number of partitions), so no coordinator is needed: rendezvous hashing ranks the members
for each partition (an assignment that moves few partitions when a member joins or leaves),
and each member takes at most its share (the first `partitions % members` members in sorted
order one more than the others), so the most and least loaded members differ by at most
one partition.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _rank(partition: int, member: str) -> int:
    digest = hashlib.blake2b(f"{partition}|{member}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def partition_assignment(members: Sequence[str], partitions: int) -> dict[str, list[int]]:
    """{member: sorted partitions} for every member (possibly none for some)."""
    ordered = sorted(set(members))
    if not ordered:
        return {}
    base, extra = divmod(partitions, len(ordered))
    capacity = {member: base + (1 if index < extra else 0) for index, member in enumerate(ordered)}
    owned: dict[str, list[int]] = {member: [] for member in ordered}
    for partition in range(partitions):
        for member in sorted(ordered, key=lambda m: _rank(partition, m), reverse=True):
            if len(owned[member]) < capacity[member]:
                owned[member].append(partition)
                break
    return owned
