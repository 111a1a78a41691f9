"""Reads of the request log."""

from __future__ import annotations

import copy
import time
from datetime import datetime

from django.db.models import Count, DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from writes.finish_notices import finish_notices
from writes.models import WriteRequest


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
