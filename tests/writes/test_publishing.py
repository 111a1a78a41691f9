"""Publishing on commit to the real test broker (Redis database 14)."""

import pytest
from django.db import transaction
from django.test import override_settings

from quotas.services import KIND_CONSUME
from tests.factories import QuotaFactory
from workers.routing import partition_for, queue_name
from writes.publishing import wake_flag_key
from writes.services import write_request_accept

pytestmark = pytest.mark.django_db(transaction=True)


def _accept(quota, request_id=None):
    with transaction.atomic():
        return write_request_accept(
            kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}, request_id=request_id
        )


def test_coalesced_publishes_one_wake_up_for_many_writes(broker_redis, cache_redis):
    quota = QuotaFactory(limit=100)
    queue = queue_name(partition_for(f"quotas.quota:{quota.pk}"))

    tickets = [_accept(quota) for _ in range(50)]

    assert broker_redis.llen(queue) == 1
    assert {t.task_id for t in tickets} == {tickets[0].task_id}  # all ride the one wake-up
    # Once a drain has started (it clears the flag) the next write wakes the partition again.
    cache_redis.delete(wake_flag_key(partition_for(f"quotas.quota:{quota.pk}")))
    later = _accept(quota)
    assert broker_redis.llen(queue) == 2
    assert later.task_id != tickets[0].task_id


@override_settings(WRITE_DISPATCH="message")
def test_message_mode_publishes_one_message_per_write_on_its_partition(broker_redis):
    quotas = [QuotaFactory() for _ in range(20)]

    for quota in quotas:
        _accept(quota, request_id=f"r{quota.pk}")

    expected: dict[str, int] = {}
    for quota in quotas:
        name = queue_name(partition_for(f"quotas.quota:{quota.pk}"))
        expected[name] = expected.get(name, 0) + 1
    assert {name: broker_redis.llen(name) for name in expected} == expected


def test_nothing_is_published_for_a_rolled_back_acceptance(broker_redis, cache_redis):
    quota = QuotaFactory()
    queue = queue_name(partition_for(f"quotas.quota:{quota.pk}"))
    with pytest.raises(RuntimeError), transaction.atomic():
        write_request_accept(kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1})
        raise RuntimeError
    assert broker_redis.llen(queue) == 0


def test_a_repeated_request_id_publishes_nothing_new(broker_redis, cache_redis):
    quota = QuotaFactory()
    queue = queue_name(partition_for(f"quotas.quota:{quota.pk}"))
    _accept(quota, request_id="once")
    cache_redis.flushdb()  # even with the wake-up flag gone
    again = _accept(quota, request_id="once")
    assert not again.created
    assert broker_redis.llen(queue) == 1


def test_bulk_acceptance_is_one_insert_and_one_wake_up_per_partition(broker_redis, cache_redis):
    from writes.services import WriteSpec, write_requests_accept

    quotas = [QuotaFactory(limit=100) for _ in range(12)]
    specs = [WriteSpec(KIND_CONSUME, q.pk, {"amount": 1}) for q in quotas for _ in range(5)]
    acceptances = write_requests_accept(writes=specs)

    assert len(acceptances) == 60 and all(a.created for a in acceptances)
    partitions = {partition_for(f"quotas.quota:{q.pk}") for q in quotas}
    assert sum(broker_redis.llen(queue_name(p)) for p in range(8)) == len(partitions)
    assert {
        a.task_id for a in acceptances if a.request.partition == acceptances[0].request.partition
    } == {acceptances[0].task_id}


def test_bulk_acceptance_is_all_or_nothing(broker_redis, cache_redis):
    from writes.models import WriteRequest
    from writes.services import RequestIdConflict, WriteSpec, write_requests_accept

    quota = QuotaFactory()
    _accept(quota, request_id="taken")
    specs = [
        WriteSpec(KIND_CONSUME, quota.pk, {"amount": 1}, "new-1"),
        WriteSpec(KIND_CONSUME, quota.pk, {"amount": 2}, "taken"),  # same key, other write
    ]
    with pytest.raises(RequestIdConflict):
        write_requests_accept(writes=specs)
    assert not WriteRequest.objects.filter(request_id="new-1").exists()

    repeat = [WriteSpec(KIND_CONSUME, quota.pk, {"amount": 1}, "twice")] * 2
    first, second = write_requests_accept(writes=repeat)
    assert first.created and not second.created
    assert first.request.pk == second.request.pk


def test_a_new_owner_clears_a_stale_wake_up_flag_its_predecessor_left(broker_redis, cache_redis):
    from workers.ownership import partition_reconcile

    quota = QuotaFactory(limit=100)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    # A predecessor died with its flag set and nothing pending: the flag would silence the
    # next writes until it expires.
    cache_redis.set(wake_flag_key(partition), "dead-owners-drain", ex=60)
    assert partition_reconcile(partition, taking_over=True) is None
    assert cache_redis.get(wake_flag_key(partition)) is None
    _accept(quota)
    assert broker_redis.llen(queue_name(partition)) == 1


def test_the_reconciler_measures_waiting_with_the_databases_clock():
    from writes.selectors import partition_oldest_pending_age

    quota = QuotaFactory(limit=100)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    assert partition_oldest_pending_age(partition=partition) is None
    _accept(quota)
    age = partition_oldest_pending_age(partition=partition)
    assert age is not None and 0 <= age < 5
