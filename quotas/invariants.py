"""What must always hold of quotas, whatever wrote them (registered in QuotasConfig.ready)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import F, Q, QuerySet, Sum

from quotas.models import Quota, QuotaLedgerEntry
from quotas.services import KIND_CONSUME, KIND_REFILL
from writes.models import WriteRequest


def _quotas(ids: Sequence[int] | None) -> QuerySet[Quota]:
    return Quota.objects.all() if ids is None else Quota.objects.filter(pk__in=ids)


def _ledger(ids: Sequence[int] | None) -> QuerySet[QuotaLedgerEntry]:
    entries = QuotaLedgerEntry.objects.all()
    return entries if ids is None else entries.filter(quota_id__in=ids)


def remaining_within_limit(ids: Sequence[int] | None) -> tuple[bool, str]:
    """0 <= remaining <= limit (the CHECK constraint makes any other state unwritable)."""
    bad = _quotas(ids).filter(Q(remaining__lt=0) | Q(remaining__gt=F("limit"))).count()
    return bad == 0, f"{bad} violations"


def ledger_matches_remaining(ids: Sequence[int] | None) -> tuple[bool, str]:
    """limit + sum(ledger deltas) == remaining: granted + remaining == limit, no update lost."""
    sums = dict(
        _ledger(ids)
        .values("quota_id")
        .annotate(total=Sum("delta"))
        .values_list("quota_id", "total")
    )
    bad = [
        q.pk
        for q in _quotas(ids).only("pk", "limit", "remaining")
        if q.limit + (sums.get(q.pk) or 0) != q.remaining
    ]
    return not bad, f"{len(bad)} quotas disagree with their ledger" if bad else "all quotas"


def no_half_written_ledger_rows(ids: Sequence[int] | None) -> tuple[bool, str]:
    bad = _ledger(ids).filter(outcome=QuotaLedgerEntry.Outcome.PENDING).count()
    return bad == 0, f"{bad} rows"


def requests_applied_once(ids: Sequence[int] | None) -> tuple[bool, str]:
    """Each finished quota request matches exactly one ledger row with the same outcome."""
    where, params = "", []
    if ids is not None:
        where, params = "AND r.object_key = ANY(%s)", [[f"quotas.quota:{i}" for i in ids]]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {WriteRequest._meta.db_table} r "
            f"LEFT JOIN {QuotaLedgerEntry._meta.db_table} l ON l.request_id = r.request_id "
            "WHERE r.kind IN (%s, %s) AND r.state IN ('applied', 'refused') "
            "AND (l.id IS NULL AND r.result->>'reason' IS DISTINCT FROM 'quota_not_found' "
            f"OR (r.state = 'applied') <> (l.outcome IN ('granted', 'refilled'))) {where}",
            [KIND_CONSUME, KIND_REFILL, *params],
        )
        bad = cursor.fetchone()[0]
    return bad == 0, f"{bad} mismatched requests"
