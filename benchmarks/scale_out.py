"""Scale out, measured (issue 13): throughput and partitions per process with 1, 2 and 3
identical "hosts" (`run_workers --processes 2` each, separate process groups, the same
command), and the memory of 64 partitions on 2 processes next to 8 partitions on 8.

    python benchmarks/scale_out.py            # about 5 minutes
    python benchmarks/scale_out.py --smoke

All on this machine's 2 cores: throughput is expected flat (the work moves between
processes, the cores do not multiply); what it shows is that the partitions spread and that
nothing is lost on the way. Writes benchmarks/results/scale_out.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "racefree_bench_scaleout"


def log(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    from benchmarks.run import _machine, _setup_django

    os.environ.setdefault("PARTITION_LEASE_TTL", "3")
    _setup_django("redis", database=DB)
    import redis
    from django.conf import settings

    for url in (settings.CELERY_BROKER_URL, settings.REDIS_URL):
        redis.Redis.from_url(url).flushdb()
    requests = 1000 if args.smoke else 6000
    out = {
        "machine": _machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "memory": memory(),
        "hosts": [throughput(hosts, requests) for hosts in (1, 2, 3)],
    }
    path = (
        ROOT
        / "benchmarks"
        / "results"
        / ("scale_out-smoke.json" if args.smoke else "scale_out.json")
    )
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def _rss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return round(total / 1024, 1)


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            todo += [
                int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            ]
    return found


def _owned(partitions: int) -> Counter:
    from django.conf import settings

    from writes.selectors import partitions_overview

    settings.WRITE_PARTITIONS = partitions
    return Counter(row["owner"] for row in partitions_overview()["partitions"])


def _wait_owned(partitions: int, processes: int, timeout: float = 120) -> Counter:
    deadline = time.monotonic() + timeout
    while True:
        owners = _owned(partitions)
        if (
            None not in owners
            and len(owners) == processes
            and max(owners.values()) - min(owners.values()) <= 1
        ):
            return owners
        if time.monotonic() > deadline:
            raise TimeoutError(f"not balanced: {dict(owners)}")
        time.sleep(0.3)


def memory() -> dict:
    from django.conf import settings

    from workers.supervisor import (
        Supervisor,
        child_environment,
        member_specs,
        partition_worker_specs,
        wait_for_workers,
    )

    out = {}
    settings.WRITE_PARTITIONS = 8
    log("8 partitions on 8 processes (one per partition)")
    fleet = Supervisor(partition_worker_specs(range(8)), env=child_environment(), quiet=True)
    fleet.start()
    try:
        wait_for_workers({f"writes.{p}" for p in range(8)}, timeout=120)
        time.sleep(5)
        pids = [p for name in fleet.children for p in _tree(fleet.pid(name))]
        out["8 partitions on 8 processes"] = {"processes": 8, "rss_mib": _rss_mib(pids)}
    finally:
        fleet.stop()
    settings.WRITE_PARTITIONS = 64
    log("64 partitions on 2 processes (elastic)")
    fleet = Supervisor(member_specs(2), env=child_environment(WRITE_PARTITIONS=64), quiet=True)
    fleet.start()
    try:
        owners = _wait_owned(64, 2)
        time.sleep(5)
        pids = [p for name in fleet.children for p in _tree(fleet.pid(name))]
        out["64 partitions on 2 processes"] = {
            "processes": 2,
            "partitions_per_process": sorted(owners.values()),
            "rss_mib": _rss_mib(pids),
        }
    finally:
        fleet.stop()
    return out


def throughput(hosts: int, requests: int) -> dict:
    from django.conf import settings

    from stress.burst import run_burst, wait_until_settled
    from stress.workload import workload_create
    from workers.supervisor import child_environment, manage_py

    partitions = 12
    settings.WRITE_PARTITIONS = partitions
    settings.WRITE_DISPATCH = "coalesced"
    log(f"{hosts} host(s) x 2 processes, {partitions} partitions, {requests} writes")
    started_hosts = [
        subprocess.Popen(
            manage_py("run_workers", "--processes", "2"),
            env={**os.environ, **child_environment(WRITE_PARTITIONS=partitions)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(hosts)
    ]
    try:
        owners = _wait_owned(partitions, 2 * hosts)
        workload = workload_create(images=20, quotas=20, quota_limit=10**6, hot=0.3)
        began = time.monotonic()
        sent = run_burst(workload=workload, requests=requests, producers=3)
        accepted_s = time.monotonic() - began
        assert wait_until_settled([s.request_id for s in sent], timeout=300) == 0
        seconds = time.monotonic() - began
        from stress.audit import burst_audit

        report = burst_audit(sent)
        return {
            "hosts": hosts,
            "processes": 2 * hosts,
            "partitions_per_process": sorted(owners.values()),
            "writes": requests,
            "accepted_per_s": round(requests / accepted_s, 1),
            "applied_per_s": round(requests / seconds, 1),
            "lost": report.lost,
            "doubled": report.doubled,
            "order_violations": report.order_violations,
        }
    finally:
        for host in started_hosts:
            host.send_signal(signal.SIGTERM)
        for host in started_hosts:
            host.wait(60)


if __name__ == "__main__":
    main()
