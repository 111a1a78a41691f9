"""Reads of the request log."""

from __future__ import annotations

import time

from django.db.models import Count, DurationField, ExpressionWrapper, F
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
    age = (
        WriteRequest.objects.filter(partition=partition, state=WriteRequest.State.PENDING)
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


def write_request_wait(
    *, request_id: str, timeout: float, object_key: str = "", row_id: int = 0
) -> WriteRequest | None:
    """Wait until the request is final or `timeout` seconds passed; return its last state.

    Given its object and row id, it sleeps until a finish notice wakes it (one read of the
    row, writes/finish_notices.py); without them, or while notices cannot be received, it
    polls the row (5 ms, doubling up to 100 ms)."""
    deadline = time.monotonic() + timeout
    if object_key and row_id and finish_notices.listening():
        hinted = finish_notices.wait(object_key, row_id, timeout)
        request = write_request_get(request_id=request_id)
        if request is None or request.is_final or not hinted:
            return request
        # A hint only: an earlier-committed neighbour finished; poll for the rest.
    delay = 0.005
    while True:
        request = write_request_get(request_id=request_id)
        if request is None or request.is_final or time.monotonic() >= deadline:
            return request
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)
