"""After a burst: was anything lost, applied twice, or applied out of order?

- lost: accepted by the producer, but no row, or still pending once the system settled;
- doubled / misapplied: replaying each object's finished requests in the order they were
  applied (applied_seq, id) through a plain model of the rules must reproduce every recorded
  outcome and the object's final state; a write applied twice (or skipped) breaks the replay;
- order: if request A's acceptance returned before request B's was sent, A must have been
  applied first;
- and the database-wide invariants (writes/invariants.py).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from core.bulk_sql import chunks
from quotas.models import Quota
from stress.burst import Sent
from tagging.models import ImageTag
from tagging.services import KIND_ADD_TAGS, tag_name_normalize
from writes.invariants import invariants_check
from writes.models import WriteRequest


@dataclass
class AuditReport:
    """What a burst ended as."""

    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    applied: int = 0
    refused: int = 0
    failed: int = 0
    lost: int = 0
    doubled: int = 0
    order_violations: int = 0
    invariants: dict[str, dict[str, object]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.doubled == 0
            and self.order_violations == 0
            and all(check["ok"] for check in self.invariants.values())
        )

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def burst_audit(sent: list[Sent]) -> AuditReport:
    """Audit a settled burst; the objects it wrote must have been fresh (full, untagged)."""
    accepted = [s for s in sent if s.accepted]
    report = AuditReport(sent=len(sent), accepted=len(accepted), rejected=len(sent) - len(accepted))
    rows = _rows([s.request_id for s in accepted])
    for s in accepted:
        row = rows.get(s.request_id)
        if row is None or row["state"] == "pending":
            report.lost += 1
            _example(report, f"lost: {s.request_id} ({'no row' if row is None else 'pending'})")
        else:
            setattr(report, row["state"], getattr(report, row["state"]) + 1)

    by_object: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows.values():
        if row["state"] in ("applied", "refused"):
            by_object[row["object_key"]].append(row)
    for object_key, object_rows in by_object.items():
        object_rows.sort(key=lambda r: (r["applied_seq"], r["id"]))
        report.doubled += _replay(report, object_key, object_rows)

    report.order_violations = _order_violations(report, accepted, rows)
    report.invariants = invariants_check().as_dict()
    return report


def _rows(request_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = {}
    for chunk in chunks(request_ids):
        for row in WriteRequest.objects.filter(request_id__in=chunk).values(
            "id", "request_id", "kind", "object_key", "payload", "state", "result", "applied_seq"
        ):
            rows[row["request_id"]] = row
    return rows


def _replay(report: AuditReport, object_key: str, rows: list[dict[str, Any]]) -> int:
    """Replay one object's requests; return how many recorded outcomes disagree."""
    label, _, object_id = object_key.partition(":")
    mismatches = 0
    if label == "quotas.quota":
        quota = Quota.objects.get(pk=object_id)
        remaining = quota.limit
        for row in rows:
            amount = row["payload"]["amount"]
            if row["kind"] == "quotas.consume":
                state = "applied" if remaining >= amount else "refused"
                remaining -= amount if state == "applied" else 0
            else:
                state, remaining = "applied", min(quota.limit, remaining + amount)
            if (row["state"], row["result"].get("remaining")) != (state, remaining):
                mismatches += 1
                _example(report, f"replay: {row['request_id']} recorded {row['result']}")
        if remaining != quota.remaining:
            mismatches += 1
            _example(report, f"replay: {object_key} ends at {quota.remaining}, not {remaining}")
    elif label == "tagging.image":
        linked: set[str] = set()
        for row in rows:
            names = list(dict.fromkeys(tag_name_normalize(n) for n in row["payload"]["tags"]))
            if row["kind"] == KIND_ADD_TAGS:
                expected = {
                    "added": [n for n in names if n not in linked],
                    "already": [n for n in names if n in linked],
                }
                linked.update(names)
            else:
                expected = {
                    "removed": [n for n in names if n in linked],
                    "absent": [n for n in names if n not in linked],
                }
                linked.difference_update(names)
            if row["result"] != expected:
                mismatches += 1
                _example(report, f"replay: {row['request_id']} recorded {row['result']}")
        actual = set(
            ImageTag.objects.filter(image_id=object_id).values_list("tag__name", flat=True)
        )
        if actual != linked:
            mismatches += 1
            _example(report, f"replay: {object_key} has {sorted(actual)}, not {sorted(linked)}")
    return mismatches


def _order_violations(
    report: AuditReport, accepted: list[Sent], rows: dict[str, dict[str, Any]]
) -> int:
    """Count requests applied before one whose acceptance had returned before they were sent."""
    by_object: dict[str, list[tuple[tuple[int, int], Sent]]] = defaultdict(list)
    for s in accepted:
        row = rows.get(s.request_id)
        if row and row["applied_seq"] is not None:
            by_object[s.object_key].append(((row["applied_seq"], row["id"]), s))
    violations = 0
    for items in by_object.values():
        items.sort(key=lambda item: item[0])
        earliest_end_after = float("inf")  # min `ended` among requests applied later
        for _, s in reversed(items):
            if earliest_end_after < s.started:
                violations += 1
                _example(report, f"order: {s.request_id} applied after a later request")
            earliest_end_after = min(earliest_end_after, s.ended)
    return violations


def _example(report: AuditReport, text: str) -> None:
    if len(report.examples) < 10:
        report.examples.append(text)
