"""The measurements of benchmarks/run.py, for one broker (Django is set up by the caller)."""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from django.db import connection

from benchmarks import raw_client
from quotas.services import quota_create
from stress.runner import StressConfig, run_stress
from stress.strategies import STRATEGIES
from workers.celery import app as celery_app
from workers.supervisor import (
    ChildSpec,
    Supervisor,
    child_environment,
    manage_py,
    partition_worker_specs,
    wait_for_workers,
)
from writes.models import WriteRequest

NOOP_QUEUE = "bench.noop"


def run_all(
    *, broker: str, sizes: dict[str, Any], workers: int, producers: int, sweep: bool
) -> dict[str, Any]:
    """Every measurement for one broker, as a JSON-able dict."""
    out: dict[str, Any] = {"broker": broker, "workers": workers, "producers": producers}
    log("raw floor")
    out["raw_floor"] = raw_floor(seconds=sizes["raw_seconds"], clients=(1, 2, 4))
    log("no-op Celery")
    out["noop"] = noop_drain(count=sizes["noop"], workers=workers)
    # One hot object lives on one partition, so one worker does all its writes: the fair
    # per-worker reference for `partitioned`.
    log("no-op Celery, one worker")
    out["noop_one_worker"] = noop_drain(count=sizes["noop"] // 2, workers=1)
    out["strategies"] = {}
    for scenario in sizes["scenarios"]:
        runs = {}
        for strategy in STRATEGIES:
            log(f"{scenario} / {strategy}")
            runs[strategy] = stress(scenario, strategy, sizes["requests"], producers, workers)
        log(f"{scenario} / coalesced, acceptance in batches of {sizes['batch']}")
        runs["coalesced-batched"] = stress(
            scenario,
            "coalesced",
            sizes["requests"] * 5,
            producers,
            workers,
            accept_batch=sizes["batch"],
        )
        out["strategies"][scenario] = runs
    peak = out["strategies"]["quota"]["coalesced"]["throughput"]
    log(f"coalesced at half its peak rate ({peak / 2:.0f}/s)")
    out["half_peak"] = stress(
        "quota", "coalesced", sizes["requests"], producers, workers, rate=peak / 2
    )
    if sweep:
        out["sweep"] = {}
        for strategy in ("lock", "partitioned", "coalesced"):
            out["sweep"][strategy] = {}
            for count in sizes["sweep"]:
                log(f"sweep {strategy} x {count} workers")
                out["sweep"][strategy][count] = stress(
                    "quota", strategy, sizes["requests"], producers, count
                )
    log("drain alone")
    out["drain"] = drain_alone(count=sizes["drain"])
    return out


def log(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def stress(
    scenario: str, strategy: str, requests: int, producers: int, workers: int, **extra: Any
) -> dict[str, Any]:
    result = run_stress(
        StressConfig(
            scenario=scenario,
            strategy=strategy,
            objects=1,
            requests=requests,
            producers=producers,
            workers=workers,
            hot=1.0,
            **extra,
        )
    )
    return result.as_dict()


# --- 1. the physical floor ---------------------------------------------------------------------


def raw_floor(*, seconds: float, clients: tuple[int, ...]) -> dict[str, Any]:
    """Raw psycopg clients: `UPDATE ... SET remaining = remaining - 1 WHERE id = ... AND
    remaining > 0 RETURNING remaining` on one hot row, autocommit, as fast as they can."""
    quota = quota_create(limit=10**12)
    db = connection.settings_dict
    dsn = f"host={db['HOST']} port={db['PORT']} user={db['USER']} dbname={db['NAME']}"
    results = {}
    context = multiprocessing.get_context("spawn")
    for count in clients:
        with context.Pool(count) as pool:
            per_client = pool.starmap(raw_client.hammer, [(dsn, quota.pk, seconds)] * count)
        done = sum(n for n, _ in per_client)
        latencies = sorted(lat for _, lats in per_client for lat in lats)
        results[count] = {
            "throughput": round(done / seconds, 1),
            "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 3),
        }
    best = max(results.values(), key=lambda r: r["throughput"])
    return {"by_clients": results, "throughput": best["throughput"], "p99_ms": best["p99_ms"]}


# --- 2. the no-op Celery task ------------------------------------------------------------------


def noop_drain(*, count: int, workers: int) -> dict[str, Any]:
    """Pre-publish `count` no-op tasks, then time `workers` solo workers draining them."""
    with celery_app.connection_for_write() as conn:
        celery_app.control.purge(connection=conn)
        _purge(NOOP_QUEUE)
        with celery_app.producer_or_acquire() as producer:
            for n in range(count):
                celery_app.send_task("stress.noop", args=[n], queue=NOOP_QUEUE, producer=producer)
    fleet = Supervisor(
        [
            ChildSpec(f"noop-{i}", manage_py("partition_worker", "--queue", NOOP_QUEUE))
            for i in range(workers)
        ],
        env=child_environment(),
        quiet=True,
    )
    fleet.start()
    deadline = time.monotonic() + 300
    try:
        # One connection for all the polling: a fresh one every 10 ms piles up sockets.
        with celery_app.connection_for_read() as conn:
            channel = conn.default_channel

            def depth() -> int:
                # Restart a worker that died (and say so), and never wait forever.
                if fleet.poll():
                    log("a no-op worker exited and was restarted")
                if time.monotonic() > deadline:
                    raise RuntimeError("the no-op workers never drained their queue")
                try:
                    return channel.queue_declare(queue=NOOP_QUEUE, passive=True).message_count
                except conn.channel_errors:  # Redis: an emptied queue no longer exists
                    return 0

            while depth() >= count:
                time.sleep(0.01)
            started = time.monotonic()
            while depth() > 0:
                time.sleep(0.01)
            seconds = time.monotonic() - started
    finally:
        fleet.stop()
    return {
        "messages": count,
        "seconds": round(seconds, 3),
        "throughput": round(count / seconds, 1),
    }


def _purge(queue: str) -> None:
    with celery_app.connection_for_write() as conn, contextlib.suppress(conn.channel_errors):
        conn.default_channel.queue_purge(queue)


# --- 4. the drain alone ------------------------------------------------------------------------


def drain_alone(*, count: int) -> dict[str, Any]:
    """`count` pending consumptions of one hot quota, applied by one partition worker.

    The worker is started first and idles; then all rows are inserted pending in one
    statement and one wake-up is published: the clock runs from that wake-up to the last
    row applied. The worker's memory is sampled before and throughout."""
    quota = quota_create(limit=count)
    key = f"quotas.quota:{quota.pk}"
    run = uuid.uuid4().hex[:8]
    fleet = Supervisor(
        partition_worker_specs([0]), env=child_environment(WRITE_PARTITIONS=1), quiet=True
    )
    fleet.start()
    samples: list[int] = []
    try:
        wait_for_workers({"writes.0"}, timeout=120)
        pid = fleet.pid("writes.0")
        samples.append(_rss_kib(pid))
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {WriteRequest._meta.db_table} (request_id, kind, object_key, "
                "partition, payload, state, result, applied_by) "
                "SELECT %s || '-' || n, 'quotas.consume', %s, 0, '{\"amount\": 1}', "
                "'pending', '{}', '' FROM generate_series(1, %s) AS n",
                [f"drain-{run}", key, count],
            )
        started = time.monotonic()
        celery_app.send_task("writes.drain_partition", kwargs={"partition": 0})
        pending = WriteRequest.objects.filter(object_key=key, state="pending")
        next_sample = started
        while pending.exists():
            if time.monotonic() >= next_sample:
                samples.append(_rss_kib(pid))
                next_sample += 0.25
            time.sleep(0.01)
        seconds = time.monotonic() - started
        samples.append(_rss_kib(pid))
    finally:
        fleet.stop()
    applied = WriteRequest.objects.filter(object_key=key, state="applied").count()
    quota.refresh_from_db()
    memory = [s for s in samples if s]
    return {
        "requests": count,
        "applied": applied,
        "seconds": round(seconds, 3),
        "throughput": round(count / seconds, 1),
        "remaining_after": quota.remaining,
        "memory_kib": {
            "before": memory[0],
            "after": memory[-1],
            "min": min(memory),
            "max": max(memory),
        }
        if memory
        else {},
        "memory_change_pct": round(100 * (max(memory) - memory[0]) / memory[0], 1)
        if memory
        else None,
    }


def _rss_kib(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
