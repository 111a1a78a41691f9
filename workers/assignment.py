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


def partition_assignment(
    members: Sequence[str], partitions: int, *, counts: dict[str, int] | None = None
) -> dict[str, list[int]]:
    """{member: sorted partitions} for every member (possibly none for some).

    `counts`: each member's own WRITE_PARTITIONS, while a change of it rolls out; a member
    is given only partitions below its count, and every partition below the largest count
    goes to some member that can take it (the least loaded, ties broken by rank)."""
    ordered = sorted(set(members))
    if not ordered:
        return {}
    if counts and len({counts[m] for m in ordered}) > 1:
        return _during_rollout(ordered, max(counts[m] for m in ordered), counts)
    base, extra = divmod(partitions, len(ordered))
    capacity = {member: base + (1 if index < extra else 0) for index, member in enumerate(ordered)}
    owned: dict[str, list[int]] = {member: [] for member in ordered}
    for partition in range(partitions):
        for member in sorted(ordered, key=lambda m: _rank(partition, m), reverse=True):
            if len(owned[member]) < capacity[member]:
                owned[member].append(partition)
                break
    return owned


def _during_rollout(
    ordered: list[str], partitions: int, counts: dict[str, int]
) -> dict[str, list[int]]:
    owned: dict[str, list[int]] = {member: [] for member in ordered}
    # The partitions fewest members can take first: then the others fill in the balance.
    for partition in reversed(range(partitions)):
        eligible = [m for m in ordered if counts[m] > partition]
        if eligible:
            chosen = min(eligible, key=lambda m: (len(owned[m]), -_rank(partition, m)))
            owned[chosen].append(partition)
    return {member: sorted(share) for member, share in owned.items()}
