"""The HTTP benchmark's measurements (Django is set up by benchmarks/run.py --http).

One stack, as the demo runs it (the web server as `web_spec` configures it, one worker per
partition, Flower), plus the `.delay()` baseline's worker (prefork, 4 processes, as the
seeds' answer is usually deployed). For each endpoint, on fresh objects:

1. load: `wrk -t2 -c16` for `seconds`: accepted/s, p50/p99 under load;
2. applied/s over the same window, and the backlog (accepted, not yet applied) at its end;
3. CPU per write by process role (/proc), from the start of the load until every write of
   the endpoint is applied (what the whole machine spent per write);
4. idle latency: one client, `idle_requests` sequential requests on one connection.

Then `consume/?wait=5` offered at half the peak rate of `consume/` (wrk with a per-thread
schedule), and the in-process cost of the Python call a user's own view makes.
"""

from __future__ import annotations

import http.client
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection
from rest_framework.authtoken.models import Token

from benchmarks.cpu_by_process import LOAD_ROLE, cpu_by_role
from quotas.models import Quota
from quotas.services import quota_create
from tagging.services import image_create
from workers.supervisor import (
    ChildSpec,
    Supervisor,
    child_environment,
    flower_spec,
    manage_py,
    partition_worker_specs,
    wait_for_http,
    wait_for_workers,
    web_spec,
)
from writes.models import WriteRequest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOAD_SCRIPT = HERE / "load.lua"
BIG_LIMIT = 10**12
BATCH_ITEMS = 50


@dataclass(frozen=True)
class Endpoint:
    name: str
    path: str  # {quota} / {image} filled in with fresh objects
    body: str
    # "inline": applied when answered; "delay": applied by the baseline worker (the quota
    # tells); "log": the product's request log tells; "none": writes nothing (a floor).
    applies: str
    writes_per_request: int = 1
    ours: bool = False


ENDPOINTS = [
    # Floors: the web tier alone, nothing written (each request counted as one "write").
    Endpoint("floor: plain Django view", "/bench/noop-django/", "{}", "none"),
    Endpoint("floor: DRF view + token auth", "/bench/noop-drf/", "{}", "none"),
    Endpoint("inline UPDATE (a)", "/bench/inline-update/{quota}/", "{}", "inline"),
    Endpoint("inline select_for_update (b)", "/bench/inline-lock/{quota}/", "{}", "inline"),
    Endpoint(".delay() + worker (c)", "/bench/delay/{quota}/", "{}", "delay"),
    Endpoint("consume/", "/api/quotas/{quota}/consume/", "{}", "log", ours=True),
    Endpoint("consume/?wait=5", "/api/quotas/{quota}/consume/?wait=5", "{}", "log", ours=True),
    Endpoint("tags/", "/api/images/{image}/tags/", '{"tags": ["bench"]}', "log", ours=True),
    Endpoint(
        f"consume/batch/ ({BATCH_ITEMS} items)",
        "/api/quotas/{quota}/consume/batch/",
        json.dumps({"items": [{}] * BATCH_ITEMS}),
        "log",
        writes_per_request=BATCH_ITEMS,
        ours=True,
    ),
]
HALF_PEAK = Endpoint(
    "consume/?wait=5 at half its peak rate",
    "/api/quotas/{quota}/consume/?wait=5",
    "{}",
    "log",
    ours=True,
)


def log(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def run_all(
    *, seconds: float, idle_requests: int, connections: int = 16, threads: int = 2
) -> dict[str, Any]:
    """Every row of the HTTP benchmark, as a JSON-able dict."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run scripts/setup.sh with NEED_WRK=1")
    user, token = _bench_user()
    port = _free_port()
    stack = Supervisor(
        [
            web_spec(port),
            flower_spec(_free_port()),
            *partition_worker_specs(range(settings.WRITE_PARTITIONS)),
            ChildSpec(
                "baseline-worker",
                manage_py(
                    "partition_worker",
                    "--queue",
                    "celery",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "4",
                    "--loglevel",
                    "WARNING",
                ),
            ),
        ],
        log_dir=ROOT / "var" / "log" / "bench-http",
        env=child_environment(
            FLOWER_BASIC_AUTH="bench:bench-secret",
            # The throttle stays on the path (its cost is measured) but with room for the
            # ~200k writes of a run: the default 100,000/minute would answer 429 by the end.
            API_WRITE_THROTTLE="10000000/minute",
            PYTHONPATH=str(ROOT),
            LOG_LEVEL="WARNING",
        ),
    )
    stack.start()
    base_url = f"http://127.0.0.1:{port}"
    rows: list[dict[str, Any]] = []
    try:
        wait_for_http(f"{base_url}/healthz", timeout=120)
        wait_for_workers(
            {f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)} | {"celery"},
            timeout=120,
        )
        time.sleep(2)  # let start-up work (reconcilers' first pass, imports) settle
        for endpoint in ENDPOINTS:
            log(endpoint.name)
            rows.append(
                measure(
                    endpoint,
                    base_url,
                    user,
                    token,
                    seconds=seconds,
                    connections=connections,
                    threads=threads,
                    idle_requests=idle_requests,
                )
            )
        # Half of ?wait's own peak (its concurrency is bound by the outcome's latency).
        peak = next(r for r in rows if r["name"] == "consume/?wait=5")["accepted_per_s"]
        log(f"{HALF_PEAK.name} ({peak / 2:.0f}/s)")
        rows.append(
            measure(
                HALF_PEAK,
                base_url,
                user,
                token,
                seconds=seconds,
                connections=connections,
                threads=threads,
                idle_requests=0,
                rate=peak / 2,
            )
        )
        log("the Python call, in-process")
        python_call = python_call_cost(user, count=max(50, idle_requests * 2))
    finally:
        stack.stop()
    return {
        "seconds": seconds,
        "connections": connections,
        "threads": threads,
        "partitions": settings.WRITE_PARTITIONS,
        "rows": rows,
        "python_call": python_call,
    }


def vacuum() -> None:
    """Each endpoint starts with the tables as clean as the first one did: what the previous
    endpoint left (dead row versions of the request log) is vacuumed away."""
    with connection.cursor() as cursor:
        for model in (WriteRequest, Quota):
            cursor.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")


def measure(
    endpoint: Endpoint,
    base_url: str,
    user: Any,
    token: str,
    *,
    seconds: float,
    connections: int,
    threads: int,
    idle_requests: int,
    rate: float | None = None,
) -> dict[str, Any]:
    vacuum()
    quota = quota_create(limit=BIG_LIMIT, owner=user)
    image = image_create(title="bench", owner=user)
    path = endpoint.path.format(quota=quota.pk, image=image.pk)
    counter = _Counter(endpoint, quota, image)
    accepted0, applied0 = counter.read()
    cpu0, t0 = cpu_by_role(), time.monotonic()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = wrk(base_url + path, endpoint.body, token, seconds, connections, threads, rate)
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t1 = time.monotonic()
    accepted1, applied1 = counter.read()
    if endpoint.applies == "delay":
        accepted1 = accepted0 + load["status_202"]
    if endpoint.applies == "none":
        accepted1 = applied1 = load["status_202"]
    window = t1 - t0
    accepted, applied = accepted1 - accepted0, applied1 - applied0
    backlog = accepted - applied
    drained_after = _wait_applied(counter, accepted1, timeout=max(60.0, 10 * seconds))
    cpu1, t2 = cpu_by_role(), time.monotonic()
    cpu = {
        role: round((cpu1.get(role, 0.0) - cpu0.get(role, 0.0)) * 1000 / max(accepted, 1), 3)
        for role in sorted(set(cpu0) | set(cpu1))
    }
    cpu.pop(LOAD_ROLE, None)  # wrk exits before the last sample: its own rusage instead
    wrk_seconds = (children1.ru_utime + children1.ru_stime) - (
        children0.ru_utime + children0.ru_stime
    )
    load_cpu = round(wrk_seconds * 1000 / max(load["requests"], 1), 3)
    idle = (
        idle_latency(base_url + path, endpoint.body, token, idle_requests) if idle_requests else {}
    )
    return {
        "name": endpoint.name,
        "path": endpoint.path,
        "ours": endpoint.ours,
        "writes_per_request": endpoint.writes_per_request,
        "offered_rate": round(rate, 1) if rate else None,
        "accepted_per_s": round(accepted / window, 1),
        "applied_per_s": round(applied / window, 1),
        "backlog": backlog,
        "drained_after_s": drained_after,
        "p50_ms": round(load["p50_us"] / 1000, 2),
        "p99_ms": round(load["p99_us"] / 1000, 2),
        "idle_p50_ms": idle.get("p50_ms"),
        "idle_p99_ms": idle.get("p99_ms"),
        "idle_statuses": idle.get("statuses"),
        "idle_reconnects": idle.get("reconnects"),
        "cpu_ms_per_write": round(sum(cpu.values()), 2),
        "cpu_ms_per_write_by_role": cpu,
        "load_generator_cpu_ms_per_request": load_cpu,
        "requests": load["requests"],
        "statuses": {
            "200": load["status_200"],
            "202": load["status_202"],
            "other": load["status_other"],
        },
        "socket_errors": load["socket_errors"],
        "window_s": round(window, 2),
        "measured_s": round(t2 - t0, 2),
    }


class _Counter:
    """How many writes an endpoint's objects have accepted and applied so far."""

    def __init__(self, endpoint: Endpoint, quota: Quota, image: Any) -> None:
        self.endpoint = endpoint
        self.quota = quota
        on_image = "{image}" in endpoint.path
        self.key = f"tagging.image:{image.pk}" if on_image else f"quotas.quota:{quota.pk}"

    def read(self) -> tuple[int, int]:
        if self.endpoint.applies == "none":
            return 0, 0
        with connection.cursor() as cursor:
            if self.endpoint.applies == "log":
                cursor.execute(
                    "SELECT count(*), count(*) FILTER (WHERE state <> 'pending') "
                    f"FROM {WriteRequest._meta.db_table} WHERE object_key = %s",
                    [self.key],
                )
                accepted, applied = cursor.fetchone()
                return accepted, applied
            cursor.execute("SELECT remaining FROM quotas_quota WHERE id = %s", [self.quota.pk])
            used = BIG_LIMIT - cursor.fetchone()[0]
            return used, used


def _wait_applied(counter: _Counter, accepted: int, *, timeout: float) -> float | None:
    """Seconds until every accepted write is applied (None: not within `timeout`)."""
    if counter.endpoint.applies == "none":
        return 0.0
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if counter.read()[1] >= accepted:
            return round(time.monotonic() - started, 2)
        time.sleep(0.05)
    return None


def wrk(
    url: str,
    body: str,
    token: str,
    seconds: float,
    connections: int,
    threads: int,
    rate: float | None,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_TOKEN": token,
        "BENCH_BODY": body,
        "BENCH_THREADS": str(threads),
        "BENCH_RATE": str(rate or 0),
    }
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "15s",
        "-s",
        str(LOAD_SCRIPT),
        url,
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line.removeprefix("WRKJSON "))
    raise RuntimeError(f"wrk printed no summary (exit {out.returncode}): {out.stderr[-2000:]}")


def idle_latency(url: str, body: str, token: str, count: int) -> dict[str, Any]:
    """One client, `count` sequential requests on one keep-alive connection (after 10 to warm
    up): p50 and p99 in ms, and the statuses."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    latencies, statuses, reconnects = [], {}, 0
    try:
        for n in range(count + 10):
            started = time.perf_counter()
            try:
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed the kept-alive connection: open another, not timed.
                reconnects += 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
                started = time.perf_counter()
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
            response.read()
            if n >= 10:
                latencies.append(time.perf_counter() - started)
                statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
    finally:
        conn.close()
    latencies.sort()
    return {
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 2),
        "statuses": statuses,
        "reconnects": reconnects,
    }


def python_call_cost(user: Any, *, count: int) -> dict[str, Any]:
    """What a user's own view pays per call, in-process, the stack running: accepting one
    consumption (durable on return), and accepting it then waiting for its outcome."""
    from quotas.services import quota_consume_enqueue

    quota = quota_create(limit=BIG_LIMIT, owner=user)
    quota_consume_enqueue(quota_id=quota.pk)  # warm up: connections, notices
    started = time.perf_counter()
    for _ in range(count):
        quota_consume_enqueue(quota_id=quota.pk)
    accept_us = (time.perf_counter() - started) / count * 1e6
    waited, applied = [], 0
    for _ in range(max(10, count // 4)):
        started = time.perf_counter()
        write = quota_consume_enqueue(quota_id=quota.pk, wait=5)
        waited.append(time.perf_counter() - started)
        applied += write.state == "applied"
    waited.sort()
    return {
        "calls": count,
        "accept_us": round(accept_us, 1),
        "accept_and_wait_p50_ms": round(statistics.median(waited) * 1000, 2),
        "accept_and_wait_applied": f"{applied}/{len(waited)}",
    }


def _bench_user() -> tuple[Any, str]:
    call_command("create_api_user", "bench", role="writer", stdout=open(os.devnull, "w"))  # noqa: SIM115
    user = get_user_model().objects.get(username="bench")
    return user, Token.objects.get(user=user).key


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
