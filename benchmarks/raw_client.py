"""A raw psycopg client for the physical-floor measurement. Imports nothing of Django: it
runs in freshly spawned processes."""

from __future__ import annotations

import time

STATEMENT = (
    "UPDATE quotas_quota SET remaining = remaining - 1 "
    "WHERE id = %s AND remaining > 0 RETURNING remaining"
)


def hammer(dsn: str, quota_id: int, seconds: float) -> tuple[int, list[float]]:
    """Run the conditional UPDATE on one row, autocommit, for `seconds`; return the count
    and each statement's latency."""
    import psycopg

    latencies = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(STATEMENT, [quota_id], prepare=True)
        deadline = time.perf_counter() + seconds
        while (started := time.perf_counter()) < deadline:
            conn.execute(STATEMENT, [quota_id], prepare=True).fetchone()
            latencies.append(time.perf_counter() - started)
    return len(latencies), latencies
