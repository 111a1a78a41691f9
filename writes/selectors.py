"""Reads of the request log."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import Now
from django.utils import timezone

from writes.finish_notices import finish_notices
from writes.models import WriteRequest
from writes.partition_status import partition_owner, partition_statuses


def write_request_get(*, request_id: str) -> WriteRequest | None:
    """One request by its id, or None."""
    return WriteRequest.objects.filter(request_id=request_id).first()


def partition_oldest_pending_age(*, partition: int) -> float | None:
    """Seconds the oldest still-pending write of a partition has waited (None: nothing pends).

    Measured by the database's clock on both ends, so a worker's skewed clock cannot delay
    (or hasten) the reconciler."""
    due = Q(retry_at__isnull=True) | Q(retry_at__lte=Now())  # not waiting out a back-off
    age = (
        WriteRequest.objects.filter(due, partition=partition, state=WriteRequest.State.PENDING)
        .order_by("id")
        .annotate(age=ExpressionWrapper(Now() - F("accepted_at"), output_field=DurationField()))
        .values_list("age", flat=True)
        .first()
    )
    return None if age is None else max(0.0, age.total_seconds())


def write_request_counts() -> dict[str, int]:
    """How many requests are in each state."""
    counts = dict(
        WriteRequest.objects.values("state").annotate(n=Count("id")).values_list("state", "n")
    )
    return {state: counts.get(state, 0) for state in WriteRequest.State.values}


def write_request_wait(*, request: WriteRequest, timeout: float) -> WriteRequest | None:
    """Wait until an accepted request is final or `timeout` seconds passed; return its last
    state (None if it no longer exists).

    It sleeps until a finish notice wakes it (writes/finish_notices.py): most carry the
    outcome, which then costs no read at all. While notices cannot be received it polls the
    row (5 ms, doubling up to 100 ms)."""
    deadline = time.monotonic() + timeout
    if request.pk and finish_notices.listening():
        notice = finish_notices.wait(request.object_key, request.pk, timeout)
        if notice is None:  # timed out
            return write_request_get(request_id=request.request_id)
        if notice.state is not None:
            final = copy.copy(request)
            final.state, final.result = notice.state, notice.result
            final.finished_at = datetime.fromisoformat(notice.finished_at)
            return final
        found = write_request_get(request_id=request.request_id)
        if found is None or found.is_final:
            return found
        # A hint only: an earlier-committed neighbour finished; poll for the rest.
    delay = 0.005
    while True:
        found = write_request_get(request_id=request.request_id)
        if found is None or found.is_final or time.monotonic() >= deadline:
            return found
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)


def partitions_pending() -> dict[int, tuple[int, float]]:
    """{partition: (pending writes, seconds the oldest has waited)}, for partitions with any:
    read from the pending-rows index alone (final rows are never visited)."""
    table = WriteRequest._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT partition, count(*), EXTRACT(EPOCH FROM now() - min(accepted_at)) "
                f"FROM {table} WHERE state = 'pending' GROUP BY partition"
            )
            return {p: (n, max(0.0, float(age))) for p, n, age in cursor.fetchall()}
        cursor.execute(
            f"SELECT partition, count(*), min(accepted_at) FROM {table} "
            "WHERE state = 'pending' GROUP BY partition"
        )
        now = timezone.now()
        return {
            p: (n, max(0.0, (now - _aware(oldest)).total_seconds()))
            for p, n, oldest in cursor.fetchall()
        }


def _aware(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def partitions_overview() -> dict[str, Any]:
    """One row per partition (owner, lease age, drain state, pending, oldest pending age,
    finished in the last minute, last drain) and what could not be read: the operators'
    view (`manage.py writes_status`, the admin page, the metrics). Never raises for a
    service that is down: it says so in `unavailable`."""
    partitions = range(settings.WRITE_PARTITIONS)
    unavailable: dict[str, str] = {}
    try:
        pending = partitions_pending()
    except DatabaseError as exc:
        pending, unavailable["postgresql"] = None, str(exc).strip()[:200]
    try:
        statuses = partition_statuses(partitions)
    except Exception as exc:  # Redis down
        statuses, unavailable["redis"] = None, str(exc).strip()[:200]
    now = time.time()
    rows = []
    for partition in partitions:
        owner = partition_owner(statuses[partition]) if statuses is not None else None
        count, oldest = (pending or {}).get(partition, (0, None))
        rows.append(
            {
                "partition": partition,
                "owner": owner["process"] if owner else None,
                "holds_lease": owner["holds"] if owner else None,
                "owner_for_s": round(now - owner["since"], 1) if owner else None,
                "state": owner["state"] if owner else None,
                "pending": count if pending is not None else None,
                "oldest_pending_s": round(oldest, 1) if oldest is not None else None,
                "finished_last_minute": owner["finished_last_minute"] if owner else None,
                "last_drain_ago_s": round(now - owner["last_drain_at"], 1)
                if owner and owner["last_drain_at"]
                else None,
                "last_drain_requests": owner["last_drain_requests"] if owner else None,
                "processes": len(statuses[partition]) if statuses is not None else None,
            }
        )
    return {"partitions": rows, "unavailable": unavailable, "at": now}
