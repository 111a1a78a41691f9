"""Reads of the request log."""

from __future__ import annotations

import time
from datetime import datetime

from django.db.models import Count

from writes.models import WriteRequest


def write_request_get(*, request_id: str) -> WriteRequest | None:
    """One request by its id, or None."""
    return WriteRequest.objects.filter(request_id=request_id).first()


def partition_oldest_pending(*, partition: int) -> datetime | None:
    """When the oldest still-pending write of a partition was accepted (None: nothing pends)."""
    return (
        WriteRequest.objects.filter(partition=partition, state=WriteRequest.State.PENDING)
        .order_by("id")
        .values_list("accepted_at", flat=True)
        .first()
    )


def write_request_counts() -> dict[str, int]:
    """How many requests are in each state."""
    counts = dict(
        WriteRequest.objects.values("state").annotate(n=Count("id")).values_list("state", "n")
    )
    return {state: counts.get(state, 0) for state in WriteRequest.State.values}


def write_request_wait(*, request_id: str, timeout: float) -> WriteRequest | None:
    """Poll until the request is final or `timeout` seconds passed; return its last state."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        request = write_request_get(request_id=request_id)
        if request is None or request.is_final or time.monotonic() >= deadline:
            return request
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.1)
