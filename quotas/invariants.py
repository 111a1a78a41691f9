"""What must always hold of quotas, whatever wrote them (registered in QuotasConfig.ready)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection
from django.db.models import F, Q, QuerySet

from core.bulk_sql import in_list
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
    """limit + sum(ledger deltas) == remaining: granted + remaining == limit, no update lost.
    One statement, so one snapshot: a group applied between two reads cannot look like a
    disagreement."""
    quota_table, ledger_table = Quota._meta.db_table, QuotaLedgerEntry._meta.db_table
    limit = connection.ops.quote_name("limit")
    where, params = "", []
    if ids is not None:
        where, params = in_list("q.id", ids) if ids else ("1 = 0", [])
        where = f"WHERE {where}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT q.id, q.remaining, q.{limit} + COALESCE(SUM(l.delta), 0) FROM {quota_table} q "
            f"LEFT JOIN {ledger_table} l ON l.quota_id = q.id {where} "
            f"GROUP BY q.id HAVING q.{limit} + COALESCE(SUM(l.delta), 0) <> q.remaining "
            "ORDER BY q.id",
            params,
        )
        bad = [
            f"quota {pk}: remaining {remaining}, ledger says {expected}"
            for pk, remaining, expected in cursor.fetchall()
        ]
    if not bad:
        return True, "all quotas"
    return False, f"{len(bad)} quotas disagree with their ledger ({'; '.join(bad[:3])})"


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
