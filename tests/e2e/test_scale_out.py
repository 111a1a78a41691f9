"""Scale out: identical worker "hosts" (`run_workers --processes 2`, each a process group of
its own, the same command) share the partitions, and keep every write applied once, in order,
while hosts join, leave cleanly, die, and while WRITE_PARTITIONS changes. Each scenario runs
a real burst and the usual audit (lost, doubled, order, invariants).

With either broker: on RabbitMQ (the suite's RabbitMQ run takes the join/leave and the kill)
the partition queues are single-active-consumer and the leases still decide who consumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from stress.audit import burst_audit
from stress.burst import run_burst, wait_until_settled
from stress.workload import workload_create
from tests.e2e.test_partitions import assert_clean
from workers.supervisor import child_environment, manage_py, wait_for_members
from writes.selectors import partitions_overview

pytestmark = pytest.mark.e2e

PARTITIONS = 12


class Host:
    """A simulated host: one `run_workers --processes N` and everything it starts."""

    def __init__(self, name: str, log_dir: Path, processes: int = 2, **env: object) -> None:
        self.name = name
        self.log = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            manage_py("run_workers", "--processes", str(processes)),
            env={**os.environ, **child_environment(**env)},
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def pids(self) -> list[int]:
        """The host's processes: its supervisor and every descendant."""
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            todo.extend(int(child) for child in children)
        return found

    def leave(self, timeout: float = 60) -> None:
        """A clean stop (SIGTERM): partitions are handed over after the current drains."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout)

    def crash(self) -> None:
        """The whole host dies at once."""
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)


class Cluster:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.hosts: list[Host] = []

    def start(self, name: str, **env: object) -> Host:
        host = Host(name, self.log_dir, **env)
        self.hosts.append(host)
        return host

    def __getitem__(self, name: str) -> Host:
        return next(host for host in self.hosts if host.name == name)


@pytest.fixture
def cluster(transactional_db, clean_broker, cache_redis, settings, tmp_path):
    settings.WRITE_DISPATCH = "coalesced"
    settings.WRITE_PARTITIONS = PARTITIONS
    hosts = Cluster(tmp_path)
    yield hosts
    for host in hosts.hosts:
        host.leave()
    for log in sorted(tmp_path.glob("*.log")):
        text = log.read_text(errors="replace")
        if "Traceback" in text:
            print(f"--- {log.name} ---\n{text[-3000:]}")


def wait_balanced(processes: int, *, timeout: float = 30.0) -> tuple[float, Counter]:
    """Seconds until every partition is owned, by `processes` processes, loads within one."""
    started = time.monotonic()
    while True:
        rows = partitions_overview()["partitions"]
        loads = Counter(row["owner"] for row in rows)
        if (
            None not in loads
            and len(loads) == processes
            and max(loads.values()) - min(loads.values()) <= 1
        ):
            return time.monotonic() - started, loads
        assert time.monotonic() - started < timeout, f"not balanced: {dict(loads)}"
        time.sleep(0.1)


def burst_in_background(requests: int, **kwargs: object):
    workload = workload_create(images=20, quotas=20, quota_limit=10**6, hot=0.5)
    done: dict = {}

    def run() -> None:
        done["sent"] = run_burst(workload=workload, requests=requests, producers=3, **kwargs)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, done


def settled_and_audited(thread: threading.Thread, done: dict) -> None:
    thread.join(300)
    sent = done["sent"]
    assert wait_until_settled([s.request_id for s in sent if s.accepted], timeout=180) == 0
    assert_clean(burst_audit(sent))


def test_hosts_join_and_leave_while_writes_flow(cluster):
    cluster.start("a")
    seconds, loads = wait_balanced(2)
    print(f"\n1 host: balanced in {seconds:.1f}s: {sorted(loads.values())}")
    thread, done = burst_in_background(3000)
    time.sleep(2)
    started = time.monotonic()
    cluster.start("b")
    cluster.start("c")
    wait_for_members(6, timeout=60)  # their start-up: Django, Celery, under the burst
    up = time.monotonic() - started
    seconds, loads = wait_balanced(6)
    print(
        f"b and c joined (up in {up:.1f}s): balanced over 6 processes {seconds:.1f}s after "
        f"they joined: {sorted(loads.values())}"
    )
    assert sorted(loads.values()) == [2] * 6
    cluster["c"].leave()
    seconds, loads = wait_balanced(4)
    print(f"c left: balanced over 4 processes in {seconds:.1f}s: {sorted(loads.values())}")
    settled_and_audited(thread, done)


def test_a_host_killed_mid_burst_loses_nothing(cluster):
    for name in ("a", "b", "c"):
        cluster.start(name)
    wait_balanced(6)
    thread, done = burst_in_background(3000)
    time.sleep(3)
    killed_at = time.monotonic()
    cluster["b"].crash()
    _, loads = wait_balanced(4, timeout=6 * settings.PARTITION_LEASE_TTL + 10)
    print(
        f"\nhost b killed: every partition owned again, balanced over 4 processes, "
        f"{time.monotonic() - killed_at:.1f}s after the kill (lease TTL "
        f"{settings.PARTITION_LEASE_TTL:g}s): {sorted(loads.values())}"
    )
    settled_and_audited(thread, done)


def test_partitions_change_from_12_to_24_while_writes_flow(cluster, settings):
    for name in ("a", "b"):
        cluster.start(name)
    wait_balanced(4)
    first, first_done = burst_in_background(2000)
    time.sleep(2)
    # The rollout: producers and hosts with 24 partitions come, the old hosts leave one by
    # one; writes accepted under both counts are in flight at once.
    settings.WRITE_PARTITIONS = 24
    second, second_done = burst_in_background(2000)
    for old in list(cluster.hosts):
        cluster.start(f"{old.name}-24", WRITE_PARTITIONS=24)
        old.leave()
    _, loads = wait_balanced(4)
    print(f"\n12 -> 24 partitions: balanced again, {sorted(loads.values())}")
    settled_and_audited(first, first_done)
    settled_and_audited(second, second_done)
