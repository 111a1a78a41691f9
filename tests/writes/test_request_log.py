"""The request log in-process: acceptance, ordering, idempotency, failure isolation."""

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from core.errors import InvalidInput
from quotas.models import QuotaLedgerEntry
from quotas.services import KIND_CONSUME, KIND_REFILL
from tagging.services import KIND_ADD_TAGS, KIND_REMOVE_TAGS
from tests.factories import ImageFactory, QuotaFactory
from writes import kinds
from writes.models import WriteRequest
from writes.partitions import partition_for
from writes.services import (
    RequestIdConflict,
    partition_drain,
    write_request_accept,
    write_requests_apply_through,
)

pytestmark = pytest.mark.django_db


def accept(kind, object_id, payload, request_id=None):
    return write_request_accept(
        kind=kind, object_id=object_id, payload=payload, request_id=request_id
    ).request


def test_accept_records_a_pending_row_in_the_objects_partition():
    quota = QuotaFactory()
    request = accept(KIND_CONSUME, quota.pk, {"amount": 2}, "req-1")
    row = WriteRequest.objects.get(request_id="req-1")
    assert row.pk == request.pk
    assert (row.state, row.kind, row.payload) == ("pending", KIND_CONSUME, {"amount": 2})
    assert row.object_key == f"quotas.quota:{quota.pk}"
    assert row.partition == partition_for(row.object_key)
    assert row.accepted_at is not None and row.finished_at is None


def test_same_request_id_is_the_same_request():
    quota = QuotaFactory()
    first = write_request_accept(
        kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}, request_id="twice"
    )
    second = write_request_accept(
        kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}, request_id="twice"
    )
    assert first.created and not second.created
    assert first.request.pk == second.request.pk
    assert WriteRequest.objects.count() == 1


def test_request_id_reused_for_another_write_is_a_conflict():
    quota = QuotaFactory()
    accept(KIND_CONSUME, quota.pk, {"amount": 1}, "key")
    with pytest.raises(RequestIdConflict):
        accept(KIND_CONSUME, quota.pk, {"amount": 2}, "key")


@pytest.mark.parametrize(
    "bad", ["", " x", "a" * 101, "white space", "ünï", "-lead", 7, "trailing\n"]
)
def test_bad_request_ids_are_refused(bad):
    quota = QuotaFactory()
    with pytest.raises(InvalidInput):
        accept(KIND_CONSUME, quota.pk, {"amount": 1}, bad)


def test_unknown_kind_is_refused():
    with pytest.raises(KeyError):
        accept("quotas.explode", 1, {})


def test_drain_applies_a_partition_in_acceptance_order():
    quota = QuotaFactory(limit=3)
    image = ImageFactory()
    ids = [accept(KIND_CONSUME, quota.pk, {"amount": 1}).request_id for _ in range(4)]
    ids.append(accept(KIND_REFILL, quota.pk, {"amount": 5}).request_id)
    ids.append(accept(KIND_CONSUME, quota.pk, {"amount": 2}).request_id)
    tag_ids = [
        accept(KIND_ADD_TAGS, image.pk, {"tags": ["a"]}).request_id,
        accept(KIND_REMOVE_TAGS, image.pk, {"tags": ["a"]}).request_id,
    ]

    for partition in {
        partition_for(f"quotas.quota:{quota.pk}"),
        partition_for(f"tagging.image:{image.pk}"),
    }:
        partition_drain(partition=partition)

    rows = {r.request_id: r for r in WriteRequest.objects.all()}
    assert [rows[i].state for i in ids] == [
        "applied",
        "applied",
        "applied",
        "refused",
        "applied",
        "applied",
    ]
    assert [rows[i].result["remaining"] for i in ids] == [2, 1, 0, 0, 3, 1]
    assert rows[tag_ids[0]].result == {"added": ["a"], "already": []}
    assert rows[tag_ids[1]].result == {"removed": ["a"], "absent": []}
    assert not image.tags.exists()
    assert all(r.finished_at and r.applied_seq for r in rows.values())


def test_a_later_message_applies_earlier_pending_writes_first():
    """Per-object order survives a lost or overtaken message."""
    quota = QuotaFactory(limit=10)
    first = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    second = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    key = f"quotas.quota:{quota.pk}"

    summary = write_requests_apply_through(object_key=key, request_id=second.request_id)
    again = write_requests_apply_through(object_key=key, request_id=first.request_id)

    assert summary["applied_now"] == 2
    assert again == {"request_id": first.request_id, "state": "applied", "applied_now": 0}
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.result["remaining"], second.result["remaining"]) == (9, 8)
    assert QuotaLedgerEntry.objects.count() == 2


def test_a_message_for_an_unknown_request_changes_nothing():
    quota = QuotaFactory()
    result = write_requests_apply_through(
        object_key=f"quotas.quota:{quota.pk}", request_id="never-accepted"
    )
    assert result["state"] == "unknown"


def test_a_write_that_crashes_its_applier_is_failed_alone(monkeypatch):
    quota = QuotaFactory(limit=10)
    good = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    poison = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    after = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    real = kinds.object_type_for_key(good.object_key)[0]

    def apply(*, quota_id, writes):
        if any(w.request_id == poison.request_id for w in writes):
            raise ValueError("boom")
        return real.apply(quota_id=quota_id, writes=writes)

    monkeypatch.setitem(
        kinds._by_label,
        "quotas.quota",
        kinds.ObjectType(real.label, real.id_arg, apply, real.kinds),
    )
    partition_drain(partition=good.partition)

    states = dict(WriteRequest.objects.values_list("request_id", "state"))
    assert states == {
        good.request_id: "applied",
        poison.request_id: "failed",
        after.request_id: "applied",
    }
    failed = WriteRequest.objects.get(pk=poison.pk)
    assert failed.result == {"reason": "error", "detail": "ValueError: boom"}


def test_accept_inside_a_rolled_back_transaction_leaves_nothing():
    quota = QuotaFactory()
    with pytest.raises(RuntimeError), transaction.atomic():
        accept(KIND_CONSUME, quota.pk, {"amount": 1}, "ghost")
        raise RuntimeError
    assert not WriteRequest.objects.filter(request_id="ghost").exists()


def test_a_soft_time_limit_leaves_the_writes_pending_never_failed(monkeypatch):
    # The soft limit says nothing about the writes: they must stay pending (applied later),
    # not be isolated one by one and marked failed.
    quota = QuotaFactory(limit=10)
    first = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    second = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    real = kinds.object_type_for_key(first.object_key)[0]

    def apply(*, quota_id, writes):
        raise SoftTimeLimitExceeded("soft time limit (60s)")

    monkeypatch.setitem(
        kinds._by_label,
        "quotas.quota",
        kinds.ObjectType(real.label, real.id_arg, apply, real.kinds),
    )
    with pytest.raises(SoftTimeLimitExceeded):
        partition_drain(partition=first.partition)
    states = set(
        WriteRequest.objects.filter(pk__in=[first.pk, second.pk]).values_list("state", flat=True)
    )
    assert states == {"pending"}


def test_a_write_of_an_unregistered_object_type_fails_without_stalling_its_partition():
    quota = QuotaFactory(limit=10)
    good = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    # As if a deploy removed the type while one of its writes was still pending.
    orphan = WriteRequest.objects.create(
        request_id="orphan-1",
        kind="gone.write",
        object_key="gone.model:1",
        partition=good.partition,
        payload={},
    )
    later = accept(KIND_CONSUME, quota.pk, {"amount": 1})
    partition_drain(partition=good.partition)
    states = dict(
        WriteRequest.objects.filter(pk__in=[good.pk, orphan.pk, later.pk]).values_list(
            "request_id", "state"
        )
    )
    assert states == {good.request_id: "applied", "orphan-1": "failed", later.request_id: "applied"}
    assert "gone.model:1" in WriteRequest.objects.get(pk=orphan.pk).result["detail"]


def test_a_drain_stops_at_its_time_budget_between_groups_and_wakes_itself():
    # Three quotas in one partition: with no budget left, one group is applied, the rest wait
    # for the wake-up the drain publishes for itself.
    quotas, partition = [], None
    while len(quotas) < 3:
        quota = QuotaFactory(limit=10)
        p = partition_for(f"quotas.quota:{quota.pk}")
        if partition is None or p == partition:
            partition = p
            quotas.append(quota)
    writes = [accept(KIND_CONSUME, q.pk, {"amount": 1}) for q in quotas]
    report = partition_drain(partition=partition, time_budget=0)
    assert report.continued and report.groups == 1
    states = [WriteRequest.objects.get(pk=w.pk).state for w in writes]
    assert states == ["applied", "pending", "pending"]


def test_a_batch_is_numbered_in_item_order_whatever_its_request_ids():
    from writes.services import WriteSpec, write_requests_accept

    quota = QuotaFactory(limit=10)
    ids = ["zz-3", "mm-2", "aa-1", "zz-0"]  # item order is not request_id order
    accepted = write_requests_accept(
        writes=[WriteSpec(KIND_CONSUME, quota.pk, {"amount": 1}, rid) for rid in ids]
    )
    pks = [a.request.pk for a in accepted]
    assert pks == sorted(pks)
    stored = list(WriteRequest.objects.order_by("id").values_list("request_id", flat=True))
    assert stored == ids
