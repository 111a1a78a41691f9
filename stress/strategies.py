"""The write strategies `manage.py stress` compares, on the seeds' two races.

- naive: what the seeds wrote first. Quota: read, subtract in Python, save (loses updates).
  Tags: look for the link, insert it if absent, through the explicit model (IntegrityError).
- lock: the seeds' accepted answer, `select_for_update()` on the row, in a Celery task on a
  shared queue.
- serializable: SERIALIZABLE isolation, retried on serialization failure (SQLSTATE 40001),
  in a Celery task on a shared queue.
- atomic: this product's single-statement services, called directly, no queue.
- partitioned / coalesced: this product's request log, one message per write or drains.

The seed strategies exist to be measured against (and, for naive, to be seen failing); the
product never uses them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import IntegrityError, OperationalError, connection, transaction

from quotas.models import Quota, QuotaLedgerEntry
from stress.models import StressEvent
from tagging.models import ImageTag
from tagging.services import tags_ensure

STRATEGIES = ("naive", "lock", "serializable", "atomic", "partitioned", "coalesced")
QUEUED_BASELINES = ("lock", "serializable")
REQUEST_LOG = ("partitioned", "coalesced")
STRESS_QUEUE = "stress"
# Give up on a SERIALIZABLE write after this many serialization failures.
MAX_SERIALIZABLE_ATTEMPTS = 200


@dataclass
class Applied:
    """What one write of a seed strategy did."""

    outcome: str  # granted / refused / linked / already
    retries: int = 0


def naive_consume_rollback_unsafe(*, quota_id: int, request_id: str) -> Applied:
    """The seed's read-modify-write decrement: two callers can both turn 100 into 99. Named
    for its danger; it exists to be measured and seen failing."""
    with transaction.atomic():
        quota = Quota.objects.get(pk=quota_id)
        if quota.remaining < 1:
            _ledger(quota_id, request_id, granted=False, remaining=quota.remaining)
            return Applied("refused")
        quota.remaining -= 1
        quota.save(update_fields=["remaining"])
        _ledger(quota_id, request_id, granted=True, remaining=quota.remaining)
        return Applied("granted")


def naive_add_tag_rollback_unsafe(*, image_id: int, tag_name: str) -> Applied:
    """The seed's check-then-insert through the explicit through model: raises IntegrityError
    when two callers add the same pair at once. Named for its danger."""
    tag_id = tags_ensure(names=[tag_name])[tag_name]
    with transaction.atomic():
        if ImageTag.objects.filter(image_id=image_id, tag_id=tag_id).exists():
            return Applied("already")
        ImageTag.objects.create(image_id=image_id, tag_id=tag_id)
        return Applied("linked")


def lock_consume(*, quota_id: int, request_id: str, run_id: str, accepted_at: float) -> Applied:
    """The seed's answer: lock the row (select_for_update), then decrement."""
    with transaction.atomic():
        quota = Quota.objects.select_for_update().get(pk=quota_id)
        granted = quota.remaining >= 1
        if granted:
            quota.remaining -= 1
            quota.save(update_fields=["remaining"])
        _ledger(quota_id, request_id, granted=granted, remaining=quota.remaining)
        return _event(run_id, request_id, accepted_at, "granted" if granted else "refused", 0)


def lock_add_tag(
    *, image_id: int, tag_name: str, request_id: str, run_id: str, accepted_at: float
) -> Applied:
    """The seed's answer for tags: lock the image, then check and insert."""
    from tagging.models import Image

    tag_id = tags_ensure(names=[tag_name])[tag_name]
    with transaction.atomic():
        Image.objects.select_for_update().get(pk=image_id)
        exists = ImageTag.objects.filter(image_id=image_id, tag_id=tag_id).exists()
        if not exists:
            ImageTag.objects.create(image_id=image_id, tag_id=tag_id)
        return _event(run_id, request_id, accepted_at, "already" if exists else "linked", 0)


def serializable_consume(
    *, quota_id: int, request_id: str, run_id: str, accepted_at: float
) -> Applied:
    """Read-modify-write under SERIALIZABLE, retried on serialization failure."""

    def body() -> str:
        quota = Quota.objects.get(pk=quota_id)
        granted = quota.remaining >= 1
        if granted:
            quota.remaining -= 1
            quota.save(update_fields=["remaining"])
        _ledger(quota_id, request_id, granted=granted, remaining=quota.remaining)
        return "granted" if granted else "refused"

    return _serializable(body, run_id, request_id, accepted_at)


def serializable_add_tag(
    *, image_id: int, tag_name: str, request_id: str, run_id: str, accepted_at: float
) -> Applied:
    """Check-then-insert under SERIALIZABLE, retried on serialization failure."""
    tag_id = tags_ensure(names=[tag_name])[tag_name]

    def body() -> str:
        if ImageTag.objects.filter(image_id=image_id, tag_id=tag_id).exists():
            return "already"
        ImageTag.objects.create(image_id=image_id, tag_id=tag_id)
        return "linked"

    return _serializable(body, run_id, request_id, accepted_at)


def _serializable(body: object, run_id: str, request_id: str, accepted_at: float) -> Applied:
    for attempt in range(MAX_SERIALIZABLE_ATTEMPTS):
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                outcome = body()
                return _event(run_id, request_id, accepted_at, outcome, attempt)
        except (OperationalError, IntegrityError) as exc:
            # 40001 serialization_failure (or the unique index noticing first): retry.
            if getattr(exc.__cause__, "sqlstate", None) not in ("40001", "40P01", "23505"):
                raise
            time.sleep(0.001 * min(attempt, 20))
    raise OperationalError(f"{request_id}: still failing after {MAX_SERIALIZABLE_ATTEMPTS} tries")


def _ledger(quota_id: int, request_id: str, *, granted: bool, remaining: int) -> None:
    QuotaLedgerEntry.objects.create(
        quota_id=quota_id,
        request_id=request_id,
        kind="consume",
        amount=1,
        delta=-1 if granted else 0,
        outcome="granted" if granted else "refused",
        reason="" if granted else "insufficient",
        remaining_after=remaining,
    )


def _event(run_id: str, request_id: str, accepted_at: float, outcome: str, retries: int) -> Applied:
    StressEvent.objects.create(
        run_id=run_id,
        request_id=request_id,
        accepted_at=accepted_at,
        committed_at=time.time(),
        outcome=outcome,
        retries=retries,
    )
    return Applied(outcome, retries)
