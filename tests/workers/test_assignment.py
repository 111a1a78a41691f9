"""The partition assignment every worker process computes on its own."""

from __future__ import annotations

import random

import pytest

from workers.assignment import partition_assignment


@pytest.mark.parametrize("members", [1, 2, 3, 5, 6, 7, 9])
@pytest.mark.parametrize("partitions", [8, 12, 64])
def test_every_partition_has_one_owner_and_loads_differ_by_at_most_one(members, partitions):
    names = [f"host{n % 3}:{1000 + n}:abc{n}" for n in range(members)]
    assignment = partition_assignment(names, partitions)
    owned = sorted(p for share in assignment.values() for p in share)
    assert owned == list(range(partitions))
    loads = [len(share) for share in assignment.values()]
    assert max(loads) - min(loads) <= 1


def test_every_process_computes_the_same_assignment_whatever_order_it_sees():
    names = [f"h:{n}:x" for n in range(5)]
    shuffled = names[:]
    random.Random(3).shuffle(shuffled)
    assert partition_assignment(names, 32) == partition_assignment(shuffled, 32)


def test_a_join_moves_few_partitions():
    before = partition_assignment([f"h:{n}:x" for n in range(3)], 60)
    after = partition_assignment([f"h:{n}:x" for n in range(4)], 60)
    owner_before = {p: m for m, share in before.items() for p in share}
    owner_after = {p: m for m, share in after.items() for p in share}
    moved = sum(owner_before[p] != owner_after[p] for p in range(60))
    assert moved <= 60 // 4 + 6  # about the newcomer's share, not a reshuffle


def test_no_members_no_assignment():
    assert partition_assignment([], 8) == {}


def test_during_a_change_of_partition_count_every_partition_has_an_owner_that_can_take_it():
    members = ["a:1:x", "a:2:x", "b:3:x", "b:4:x"]
    counts = {"a:1:x": 12, "a:2:x": 12, "b:3:x": 24, "b:4:x": 24}
    assignment = partition_assignment(members, 24, counts=counts)
    owner = {p: m for m, share in assignment.items() for p in share}
    assert sorted(owner) == list(range(24))
    assert all(p < counts[m] for p, m in owner.items())
    loads = [len(share) for share in assignment.values()]
    assert max(loads) - min(loads) <= 1
