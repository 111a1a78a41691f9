"""Batches accepted concurrently: the same request_ids in different orders must not deadlock
on the request log's unique index (a client resending a reshuffled batch after a timeout)."""

from __future__ import annotations

import pytest

from tests.concurrency import raised, run_in_processes
from tests.factories import QuotaFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 15
BATCH = 300


def _accept_rounds(quota_id: int, reverse: bool) -> list[int]:
    from quotas.services import KIND_CONSUME
    from writes.services import WriteSpec, write_requests_accept

    created = []
    for round_ in range(ROUNDS):
        ids = [f"r{round_}-{i:04d}" for i in range(BATCH)]
        if reverse:
            ids.reverse()
        specs = [WriteSpec(KIND_CONSUME, quota_id, {"amount": 1}, rid) for rid in ids]
        created.append(sum(a.created for a in write_requests_accept(writes=specs)))
    return created


@pytest.mark.processes
def test_reshuffled_twin_batches_accept_each_write_once_without_deadlock():
    quota = QuotaFactory(limit=10**6)
    results = run_in_processes(
        [(_accept_rounds, (quota.pk, False), {}), (_accept_rounds, (quota.pk, True), {})]
    )
    assert raised(results) == []
    forward, backward = results
    # Each round's 300 writes were recorded exactly once, split between the two twins.
    assert [a + b for a, b in zip(forward, backward, strict=True)] == [BATCH] * ROUNDS
