"""Fault injection: a real burst of mixed writes through the API, a fault in the middle,
recovery, then the audit. Lost and doubled must be 0, every invariant true, per-object order
kept. Each scenario adds a row to docs/RELIABILITY.md (WRITE_RELIABILITY_DOC=1)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import F, Max
from rest_framework.authtoken.models import Token

from stress.audit import burst_audit
from stress.burst import ApiTarget, run_burst, wait_until_settled
from stress.faults import (
    owners_sigkill,
    postgresql_can_restart,
    postgresql_restart,
    redis_restart_empty,
)
from stress.workload import workload_create
from tests.e2e.conftest import wait_until_queues_idle
from tests.faults.conftest import RESULTS
from tests.lockwait import raw_connection
from workers.celery import app as celery_app
from writes.models import WriteRequest
from writes.partitions import partition_for

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

REQUESTS = 800


def run_with_fault(stack, scenario: str, inject: Callable[..., str], *, at: float = 0.3):
    """Burst through the API; when `at` of it is accepted, `inject(hottest=[keys])` the fault
    (the hottest objects' keys first); recover; audit; record the row."""
    from io import StringIO

    from django.core.management import call_command

    call_command("create_api_user", "fault-operator", role="operator", stdout=StringIO())
    token = Token.objects.get(user__username="fault-operator").key
    workload = workload_create(images=8, quotas=8, quota_limit=40, hot=0.6)
    keys = [f"tagging.image:{i}" for i in workload.image_ids] + [
        f"quotas.quota:{q}" for q in workload.quota_ids
    ]
    # Workload.pick favours the first ids: these objects get the most writes.
    keys_by_heat = [
        f"quotas.quota:{workload.quota_ids[0]}",
        f"tagging.image:{workload.image_ids[0]}",
    ]
    progress = {"done": 0}
    outcome: dict = {}

    def burst() -> None:
        outcome["sent"] = run_burst(
            workload=workload,
            requests=REQUESTS,
            producers=4,
            api=ApiTarget(stack.base_url, token),
            on_progress=lambda done: progress.__setitem__("done", done),
        )

    thread = threading.Thread(target=burst)
    thread.start()
    while progress["done"] < REQUESTS * at and thread.is_alive():
        time.sleep(0.05)
    fault_started = time.monotonic()
    fault_started_db = _db_now()
    faults = inject(hottest=keys_by_heat)
    fault_lasted = time.monotonic() - fault_started
    connection.close()  # PostgreSQL may have restarted under this process too
    fault_over = _db_now()
    fault_over_at = time.monotonic()
    recovered = _wait_for_backlog(keys, fault_over)
    recovery = recovered - fault_over_at
    thread.join(300)
    sent = outcome["sent"]
    assert wait_until_settled([s.request_id for s in sent if s.accepted], timeout=180) == 0
    report = burst_audit(sent)
    longest_wait = _longest_wait(keys, fault_started_db, fault_over)
    RESULTS.append(
        {
            "scenario": scenario,
            "sent": report.sent,
            "accepted": report.accepted,
            "faults": faults,
            "fault_s": fault_lasted,
            "longest_wait_s": longest_wait,
            "recovery_s": recovery,
            "lost": report.lost,
            "doubled": report.doubled,
            "order_violations": report.order_violations,
            "invariants_ok": all(c["ok"] for c in report.invariants.values()),
            "rejected": report.rejected,
            "client_retries": sum(s.retries for s in sent),
        }
    )
    rejections = Counter(f"{s.status} {s.error[:60]}" for s in sent if not s.accepted)
    print(
        f"\n{scenario}: {faults}; recovered in {recovery:.1f}s; {report.as_dict()}; "
        f"rejections: {dict(rejections)}"
    )
    assert report.lost == 0, report.examples
    assert report.doubled == 0, report.examples
    assert report.order_violations == 0, report.examples
    assert all(c["ok"] for c in report.invariants.values()), report.invariants
    assert report.accepted == REQUESTS, rejections  # clients retry 503s with the same id
    return report


def _db_now():
    for _ in range(100):
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT now()")
                return cursor.fetchone()[0]
        except Exception:
            connection.close()
            time.sleep(0.2)
    raise AssertionError("database never came back")


def _longest_wait(keys: list[str], fault_started, fault_over) -> float:
    """The longest any write accepted around the fault (from 1 s before it to 1 s after it)
    waited between acceptance and being applied: how long the fault delayed writes."""
    window = timedelta(seconds=1)
    waits = WriteRequest.objects.filter(
        object_key__in=keys,
        accepted_at__gte=fault_started - window,
        accepted_at__lte=fault_over + window,
    ).aggregate(longest=Max(F("finished_at") - F("accepted_at")))["longest"]
    return waits.total_seconds() if waits else 0.0


def _wait_for_backlog(keys: list[str], accepted_before, timeout: float = 180) -> float:
    """When every write accepted before the fault ended is final: recovery is complete."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not WriteRequest.objects.filter(
                object_key__in=keys, state="pending", accepted_at__lte=accepted_before
            ).exists():
                return time.monotonic()
        except Exception:
            connection.close()
        time.sleep(0.1)
    raise AssertionError("the backlog from before the fault never drained")


def test_sigkill_partition_owners_mid_drain(fault_stack, transactional_db):
    def inject(hottest: list[str]) -> str:
        # The partitions of the hottest quota and image: their drains are always busy, so the
        # kill lands mid-batch (a drain's transaction open, its wake-up flag set).
        partitions = sorted({partition_for(key) for key in hottest})
        return owners_sigkill(fault_stack.supervisor, partitions)

    run_with_fault(fault_stack, "SIGKILL partition owners", inject)


def test_redis_restarts_with_its_data_gone(fault_stack, transactional_db):
    run_with_fault(fault_stack, "Redis restart, data lost", lambda **_: redis_restart_empty())


@pytest.mark.skipif(not postgresql_can_restart(), reason="needs pg_ctlcluster")
def test_postgresql_restarts(fault_stack, transactional_db):
    run_with_fault(fault_stack, "PostgreSQL restart", lambda **_: postgresql_restart())


def test_worker_connections_terminated(fault_stack, transactional_db):
    def inject(**_: object) -> str:
        killed = 0
        with raw_connection() as admin:
            for _ in range(3):
                killed += len(
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND application_name LIKE "
                        "'racefree-%'"
                    ).fetchall()
                )
                time.sleep(1)
        return f"pg_terminate_backend on {killed} worker and web sessions, 3 rounds"

    run_with_fault(fault_stack, "pg_terminate_backend", inject)


def test_every_message_delivered_twice(fault_stack, transactional_db):
    def inject(**_: object) -> str:
        rows = list(WriteRequest.objects.all())
        for row in rows:
            object_id = int(row.object_key.split(":")[1])
            id_arg = "quota_id" if row.kind.startswith("quotas.") else "image_id"
            celery_app.send_task(
                row.kind, kwargs={id_arg: object_id, **row.payload, "request_id": row.request_id}
            )
        for partition in range(settings.WRITE_PARTITIONS):
            celery_app.send_task("writes.drain_partition", kwargs={"partition": partition})
        return f"{len(rows)} accepted writes published a second time, by hand"

    run_with_fault(fault_stack, "duplicate delivery", inject, at=0.6)
    wait_until_queues_idle()


def test_all_workers_stopped_while_writes_keep_coming(fault_stack, transactional_db):
    workers = [name for name in fault_stack.supervisor.children if name.startswith("writes.")]

    def inject(**_: object) -> str:
        threads = [
            threading.Thread(target=fault_stack.supervisor.stop_child, args=(name,))
            for name in workers
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(5)  # the API keeps accepting; nothing applies
        for name in workers:
            fault_stack.supervisor.start_child(name)
        return f"all {len(workers)} worker processes stopped for 5 s, then started"

    run_with_fault(fault_stack, "all workers stopped 5 s", inject)
