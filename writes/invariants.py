"""The invariants the product promises, checked against the database.

- every quota: 0 <= remaining <= limit, and limit + sum(ledger deltas) == remaining
  (granted + remaining == limit);
- no ledger row left half-written; one ledger row per idempotency key (a unique constraint);
- one link per (image, tag);
- every finished quota request has exactly one ledger row, with the same outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, F, Q, Sum

from quotas.models import Quota, QuotaLedgerEntry
from tagging.models import ImageTag
from writes.models import WriteRequest


@dataclass
class InvariantReport:
    """Named checks with their pass/fail and a short detail."""

    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.checks.values())

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks[name] = (passed, detail)

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {name: {"ok": ok, "detail": detail} for name, (ok, detail) in self.checks.items()}


def invariants_check() -> InvariantReport:
    """Check every invariant over the whole database."""
    report = InvariantReport()

    out_of_bounds = Quota.objects.filter(Q(remaining__lt=0) | Q(remaining__gt=F("limit"))).count()
    report.add("quota 0 <= remaining <= limit", out_of_bounds == 0, f"{out_of_bounds} violations")

    sums = dict(
        QuotaLedgerEntry.objects.values("quota_id")
        .annotate(total=Sum("delta"))
        .values_list("quota_id", "total")
    )
    mismatched = [
        q.pk
        for q in Quota.objects.only("pk", "limit", "remaining")
        if q.limit + sums.get(q.pk, 0) != q.remaining
    ]
    report.add(
        "granted + remaining == limit",
        not mismatched,
        f"{len(mismatched)} quotas disagree with their ledger" if mismatched else "all quotas",
    )

    half_written = QuotaLedgerEntry.objects.filter(outcome="pending").count()
    report.add("no half-written ledger rows", half_written == 0, f"{half_written} rows")

    doubled_links = (
        ImageTag.objects.values("image_id", "tag_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    report.add("one link per (image, tag)", doubled_links == 0, f"{doubled_links} doubled pairs")

    report.add(*_quota_requests_applied_once())
    return report


def _quota_requests_applied_once() -> tuple[str, bool, str]:
    """Each finished quota request matches exactly one ledger row with the same outcome."""
    requests = WriteRequest._meta.db_table
    ledger = QuotaLedgerEntry._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {requests} r LEFT JOIN {ledger} l "
            "ON l.request_id = r.request_id "
            "WHERE r.kind IN ('quotas.consume', 'quotas.refill') AND r.state IN ('applied', "
            "'refused') AND (l.id IS NULL AND r.result->>'reason' IS DISTINCT FROM "
            "'quota_not_found' OR (r.state = 'applied') <> (l.outcome IN ('granted', 'refilled')))"
        )
        row = cursor.fetchone()
    bad = row[0] if row else 0
    return ("each quota request applied exactly once", bad == 0, f"{bad} mismatched requests")
