"""Retention: final request rows older than the cut are deleted in bounded batches, pending
ones never; and idempotency after pruning is what the docs say it is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from quotas.models import QuotaLedgerEntry
from quotas.services import KIND_CONSUME
from tagging.services import KIND_ADD_TAGS
from tests.factories import ImageFactory, QuotaFactory
from writes.models import WriteRequest
from writes.partitions import partition_for
from writes.services import partition_drain, write_request_accept, write_requests_prune

pytestmark = pytest.mark.django_db(transaction=True)


def _accept(kind, object_id, payload, request_id):
    return write_request_accept(
        kind=kind, object_id=object_id, payload=payload, request_id=request_id
    )


def _age(request_ids, days: float) -> None:
    WriteRequest.objects.filter(request_id__in=request_ids).update(
        accepted_at=timezone.now() - timedelta(days=days)
    )


def test_only_old_final_rows_go_in_batches_and_pending_ones_stay():
    quota = QuotaFactory(limit=100)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    old = [f"old-{n}" for n in range(25)]
    for request_id in old:
        _accept(KIND_CONSUME, quota.pk, {"amount": 1}, request_id)
    partition_drain(partition=partition, linger=0)
    _accept(KIND_CONSUME, quota.pk, {"amount": 1}, "old-but-pending")
    _accept(KIND_CONSUME, quota.pk, {"amount": 1}, "recent-pending")
    _age([*old, "old-but-pending"], days=8)

    deleted = write_requests_prune(older_than=timedelta(days=7), batch_size=10, max_batches=2)
    assert deleted == 20  # bounded: two batches of ten
    assert write_requests_prune(older_than=timedelta(days=7), batch_size=10) == 5
    left = set(WriteRequest.objects.values_list("request_id", flat=True))
    assert left == {"old-but-pending", "recent-pending"}
    # The ledger is the quota's history: never pruned.
    assert QuotaLedgerEntry.objects.filter(quota=quota).count() == 25


def test_a_pruned_consumption_sent_again_is_answered_from_the_ledger_not_applied_twice():
    quota = QuotaFactory(limit=10)
    partition = partition_for(f"quotas.quota:{quota.pk}")
    _accept(KIND_CONSUME, quota.pk, {"amount": 3}, "charge-42")
    partition_drain(partition=partition, linger=0)
    _age(["charge-42"], days=30)
    call_command("writes_prune", "--older-than", "7d")
    assert not WriteRequest.objects.filter(request_id="charge-42").exists()

    again = _accept(KIND_CONSUME, quota.pk, {"amount": 3}, "charge-42")
    assert again.created  # a new request row: the old one is gone
    partition_drain(partition=partition, linger=0)
    answer = WriteRequest.objects.get(request_id="charge-42")
    quota.refresh_from_db()
    assert quota.remaining == 7  # taken once
    assert answer.state == "applied" and answer.result["duplicate"] is True


def test_a_pruned_tag_addition_sent_again_changes_nothing():
    image = ImageFactory()
    partition = partition_for(f"tagging.image:{image.pk}")
    _accept(KIND_ADD_TAGS, image.pk, {"tags": ["cat"]}, "tag-1")
    partition_drain(partition=partition, linger=0)
    _age(["tag-1"], days=30)
    call_command("writes_prune", "--older-than", "1w")
    _accept(KIND_ADD_TAGS, image.pk, {"tags": ["cat"]}, "tag-1")
    partition_drain(partition=partition, linger=0)
    again = WriteRequest.objects.get(request_id="tag-1")
    assert again.result == {"added": [], "already": ["cat"]}


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["writes_prune"], "--older-than"),
        (["writes_prune", "--older-than", "3x"], "not a duration"),
        (["writes_prune", "--older-than", "0d"], "more than 0"),
        (["writes_prune", "--older-than", "1d", "--partition", "99"], "--partition"),
        (["writes_retry"], "name the writes"),
        (["writes_retry", "--since", "2h"], "--since goes with --failed"),
        (["writes_retry", "--failed"], "--failed needs --since"),
        (["writes_retry", "--failed", "--since", "yesterday"], "a duration"),
        (["writes_status", "--interval", "0", "--watch"], "--interval"),
    ],
)
def test_operators_commands_refuse_bad_options_with_a_reason(argv, reason):
    with pytest.raises(CommandError, match=reason):
        call_command(*argv)
