"""What accepting a write sends, to whom, and when: against the real test broker (Redis
database 14) and real PostgreSQL notifications."""

import psycopg
import pytest
from django.db import connection, transaction
from django.test import override_settings

from quotas.services import KIND_CONSUME
from tests.factories import QuotaFactory
from workers.routing import queue_name
from writes.partitions import partition_for
from writes.services import write_request_accept
from writes.wakeups import CHANNEL

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def notifications():
    """A separate connection LISTENing on the wake-up channel; `.received()` drains it."""
    conn = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")

    class Received:
        def received(self, wait: float = 0.5) -> list[str]:
            return [n.payload for n in conn.notifies(timeout=wait)]

    yield Received()
    conn.close()


def _accept(quota, request_id=None):
    with transaction.atomic():
        return write_request_accept(
            kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}, request_id=request_id
        )


def test_coalesced_acceptance_notifies_the_owner_on_commit_and_publishes_nothing(
    broker_redis, notifications
):
    quota = QuotaFactory(limit=100)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    with transaction.atomic():
        write_request_accept(kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1})
        assert notifications.received(wait=0.2) == []  # not before the commit
    assert notifications.received() == [str(partition)]
    # The web process talks to no broker: the partition's owner publishes a drain.
    assert broker_redis.llen(queue_name(partition)) == 0


def test_nothing_is_notified_for_a_rolled_back_acceptance(broker_redis, notifications):
    quota = QuotaFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        write_request_accept(kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1})
        raise RuntimeError
    assert notifications.received() == []
    assert broker_redis.llen(queue_name(partition_for(f"quotas.quota:{quota.pk}"))) == 0


def test_a_repeated_request_id_notifies_nothing_new(notifications):
    quota = QuotaFactory()
    _accept(quota, request_id="once")
    assert len(notifications.received()) == 1
    again = _accept(quota, request_id="once")
    assert not again.created
    assert notifications.received() == []


def test_bulk_acceptance_is_one_insert_and_one_notification(notifications):
    from writes.services import WriteSpec, write_requests_accept

    quotas = [QuotaFactory(limit=100) for _ in range(12)]
    specs = [WriteSpec(KIND_CONSUME, q.pk, {"amount": 1}) for q in quotas for _ in range(5)]
    acceptances = write_requests_accept(writes=specs)

    assert len(acceptances) == 60 and all(a.created for a in acceptances)
    [payload] = notifications.received()
    assert sorted(map(int, payload.split(","))) == sorted(
        {partition_for(f"quotas.quota:{q.pk}") for q in quotas}
    )


@override_settings(WRITE_DISPATCH="message")
def test_message_mode_publishes_one_message_per_write_on_its_partition(broker_redis, notifications):
    quotas = [QuotaFactory() for _ in range(20)]

    tickets = [_accept(quota, request_id=f"r{quota.pk}") for quota in quotas]

    assert [t.task_id for t in tickets] == [f"r{quota.pk}" for quota in quotas]
    expected: dict[str, int] = {}
    for quota in quotas:
        name = queue_name(partition_for(f"quotas.quota:{quota.pk}"))
        expected[name] = expected.get(name, 0) + 1
    assert {name: broker_redis.llen(name) for name in expected} == expected
    assert notifications.received() == []


def test_bulk_acceptance_is_all_or_nothing(broker_redis):
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


def test_a_new_owner_drains_what_its_predecessor_left(broker_redis):
    from workers.ownership import partition_reconcile

    quota = QuotaFactory(limit=100)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    assert partition_reconcile(partition, taking_over=True) is False  # nothing pending
    _accept(quota)
    # Not owned by this process: the drain is published at once.
    assert partition_reconcile(partition, taking_over=True) is True
    assert broker_redis.llen(queue_name(partition)) == 1


def test_the_reconciler_measures_waiting_with_the_databases_clock():
    from writes.selectors import partition_oldest_pending_age

    quota = QuotaFactory(limit=100)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    assert partition_oldest_pending_age(partition=partition) is None
    _accept(quota)
    age = partition_oldest_pending_age(partition=partition)
    assert age is not None and 0 <= age < 5
