"""Group commit: concurrent callers share flushes, each gets its own result, errors reach
every caller of the failed flush, and nobody waits when alone."""

from __future__ import annotations

import threading
import time

import pytest

from core.group_commit import GroupCommit


def _run_concurrently(count: int, target) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # recorded for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_concurrent_callers_share_flushes_and_each_gets_its_own_result():
    batches: list[list[int]] = []

    def flush(items):
        batches.append(list(items))
        time.sleep(0.005)  # a commit takes time: others queue meanwhile
        return [item * 10 for item in items]

    group = GroupCommit(flush, max_batch=8)
    results = _run_concurrently(64, lambda i: group.submit(i))
    assert results == [i * 10 for i in range(64)]
    assert sorted(i for batch in batches for i in batch) == list(range(64))  # each once
    assert max(len(batch) for batch in batches) > 1  # they did share
    assert all(len(batch) <= 8 for batch in batches)


def test_a_failed_flush_fails_exactly_its_own_callers():
    def flush(items):
        time.sleep(0.002)
        if 13 in items:
            raise RuntimeError("boom")
        return list(items)

    group = GroupCommit(flush, max_batch=4)
    results = _run_concurrently(32, lambda i: group.submit(i))
    failed = [i for i, r in enumerate(results) if isinstance(r, RuntimeError)]
    assert 13 in failed and len(failed) <= 4
    assert all(results[i] == i for i in range(32) if i not in failed)


def test_alone_a_caller_flushes_at_once_in_its_own_thread():
    seen = []
    group = GroupCommit(
        lambda items: seen.append(threading.get_ident()) or list(items), max_batch=4
    )
    assert group.submit("x") == "x"
    assert seen == [threading.get_ident()]


@pytest.mark.django_db(transaction=True)
def test_concurrent_acceptances_commit_each_write_once_with_twins_resolved():
    from django.db import connection

    from quotas.services import KIND_CONSUME
    from tests.factories import QuotaFactory
    from writes.models import WriteRequest
    from writes.services import write_request_accept

    quota = QuotaFactory(limit=1000)

    def accept(i: int):
        try:
            # Pairs of callers send the same request_id: one creates it, its twin finds it.
            return write_request_accept(
                kind=KIND_CONSUME,
                object_id=quota.pk,
                payload={"amount": 1},
                request_id=f"t-{i // 2}",
            )
        finally:
            connection.close()

    results = _run_concurrently(48, accept)
    assert not [r for r in results if isinstance(r, Exception)], results
    created = [r.request.request_id for r in results if r.created]
    assert sorted(created) == sorted(f"t-{n}" for n in range(24))  # one creator per pair
    assert WriteRequest.objects.filter(object_key=f"quotas.quota:{quota.pk}").count() == 24
    assert {r.request.pk for r in results} == set(WriteRequest.objects.values_list("pk", flat=True))
