"""Real Celery worker processes applying real bursts: exactly once, in order, whatever happens.

Every test ends with the audit (stress/audit.py): nothing accepted is lost, nothing applied
twice (each object's recorded outcomes replay exactly), per-object order holds, and the
database invariants are true.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.conf import settings
from django.db.models import Count

from stress.audit import burst_audit
from stress.burst import run_burst, wait_until_settled
from stress.workload import workload_create
from tests.e2e.conftest import rabbitmq_only, redis_only, wait_until_queues_idle
from workers.celery import app as celery_app
from workers.leases import PartitionLease
from writes.models import WriteRequest

pytestmark = pytest.mark.e2e


def burst(
    *,
    requests: int,
    producers: int = 4,
    images: int = 25,
    quotas: int = 25,
    limit: int = 60,
    scenario: str = "mixed",
    **kwargs,
):
    workload = workload_create(images=images, quotas=quotas, quota_limit=limit, hot=0.5)
    started = time.monotonic()
    sent = run_burst(
        workload=workload, requests=requests, producers=producers, scenario=scenario, **kwargs
    )
    accepted_in = time.monotonic() - started
    assert wait_until_settled([s.request_id for s in sent], timeout=180) == 0
    return sent, accepted_in, time.monotonic() - started


def assert_clean(report):
    assert report.lost == 0, report.examples
    assert report.doubled == 0, report.examples
    assert report.order_violations == 0, report.examples
    assert all(check["ok"] for check in report.invariants.values()), report.invariants
    assert report.failed == 0


@pytest.mark.parametrize("dispatch", ["message", "coalesced"])
def test_4000_writes_from_4_producers_are_applied_once_in_order(deploy, dispatch):
    deploy(dispatch=dispatch)

    sent, accepted_in, settled_in = burst(requests=4000)

    report = burst_audit(sent)
    print(
        f"\n{dispatch}: 4000 writes accepted in {accepted_in:.1f}s, "
        f"all applied in {settled_in:.1f}s ({4000 / settled_in:.0f}/s); {report.as_dict()}"
    )
    assert report.accepted == 4000
    assert report.refused > 0, "hot quotas should have run out: the test covers refusals"
    assert_clean(report)
    # Every partition did work, each in its own worker process.
    by_partition = dict(
        WriteRequest.objects.values("partition")
        .annotate(workers=Count("applied_by", distinct=True))
        .values_list("partition", "workers")
    )
    assert len(by_partition) == settings.WRITE_PARTITIONS and set(by_partition.values()) == {1}


@redis_only
def test_sigkill_of_a_partition_owner_hands_over_to_its_standby(deploy, settings):
    fleet = deploy(dispatch="message", partitions=2, standbys=1)
    lease = PartitionLease(0)
    victim_pid = int(lease.holder().split(":")[1])
    victim = next(name for name in fleet.children if fleet.pid(name) == victim_pid)

    killed_at: dict[str, float] = {}
    took_over: list[float] = []

    def watch_lease():
        while time.monotonic() - killed_at["t"] < 30:
            holder = lease.holder()
            if holder and int(holder.split(":")[1]) != victim_pid:
                took_over.append(time.monotonic() - killed_at["t"])
                return
            time.sleep(0.02)

    def kill_midway(done):
        if done >= 800 and not killed_at:
            fleet.kill(victim)
            killed_at["t"] = time.monotonic()
            threading.Thread(target=watch_lease, daemon=True).start()

    sent, _, _ = burst(requests=2000, on_progress=kill_midway)

    report = burst_audit(sent)
    appliers = set(WriteRequest.objects.filter(partition=0).values_list("applied_by", flat=True))
    print(
        f"\nSIGKILL of writes.0 owner: standby took over; lease moved "
        f"{took_over[0]:.2f}s after the kill (TTL {settings.PARTITION_LEASE_TTL}s); "
        f"{report.as_dict()}"
    )
    assert len(appliers) == 2, "the standby should have applied part of partition 0"
    assert took_over and took_over[0] < settings.PARTITION_LEASE_TTL + 1
    assert_clean(report)


def test_a_message_delivered_twice_changes_nothing(deploy):
    deploy(dispatch="message")
    sent, _, _ = burst(requests=400)
    assert_clean(burst_audit(sent))
    snapshot = _state_snapshot(sent)

    # Publish every message of the burst again, by hand, exactly as the producer did.
    for row in WriteRequest.objects.all():
        object_id = int(row.object_key.split(":")[1])
        id_arg = "quota_id" if row.kind.startswith("quotas.") else "image_id"
        celery_app.send_task(
            row.kind, kwargs={id_arg: object_id, **row.payload, "request_id": row.request_id}
        )
    wait_until_queues_idle()

    assert _state_snapshot(sent) == snapshot
    assert_clean(burst_audit(sent))


def test_routing_bypassed_the_database_still_guards_every_invariant(deploy):
    """All writes on one shared queue, 4 concurrent consumers: no partition serializes an
    object's writes any more; the row locks and constraints alone keep them correct."""
    deploy(dispatch="message", routing="shared", shared_concurrency=4)

    sent, _, settled_in = burst(requests=2000, images=5, quotas=5)

    report = burst_audit(sent)
    print(f"\nbypassed routing: 2000 writes in {settled_in:.1f}s; {report.as_dict()}")
    assert len(set(WriteRequest.objects.values_list("applied_by", flat=True))) > 1
    assert_clean(report)


@rabbitmq_only
@pytest.mark.parametrize("dispatch", ["message", "coalesced"])
def test_rabbitmq_single_active_consumer_fails_over(deploy, dispatch):
    fleet = deploy(dispatch=dispatch, partitions=2, standbys=1)
    probe, _, _ = burst(requests=50, producers=1)
    active = {
        int(applied_by.split(":")[1])
        for applied_by in WriteRequest.objects.filter(partition=0).values_list(
            "applied_by", flat=True
        )
    }
    assert len(active) == 1, "RabbitMQ must deliver a partition to one consumer only"
    victim = next(name for name in fleet.children if fleet.pid(name) in active)
    fleet.kill(victim)

    sent, _, _ = burst(requests=500)

    after = set(
        WriteRequest.objects.filter(
            partition=0, request_id__in=[s.request_id for s in sent]
        ).values_list("applied_by", flat=True)
    )
    after_pids = {int(applied_by.split(":")[1]) for applied_by in after}
    assert len(after_pids) == 1 and after_pids.isdisjoint(active)
    assert_clean(burst_audit(probe + sent))


def _state_snapshot(sent):
    from quotas.models import Quota, QuotaLedgerEntry
    from tagging.models import ImageTag

    ids = [s.request_id for s in sent]
    keys = {s.object_key for s in sent}
    quota_ids = [int(k.split(":")[1]) for k in keys if k.startswith("quotas.")]
    image_ids = [int(k.split(":")[1]) for k in keys if k.startswith("tagging.")]
    return (
        sorted(Quota.objects.filter(pk__in=quota_ids).values_list("pk", "remaining")),
        sorted(
            QuotaLedgerEntry.objects.filter(request_id__in=ids).values_list(
                "request_id", "outcome", "remaining_after"
            )
        ),
        sorted(ImageTag.objects.filter(image_id__in=image_ids).values_list("image_id", "tag_id")),
        sorted(
            WriteRequest.objects.filter(request_id__in=ids).values_list(
                "request_id", "state", "applied_seq"
            )
        ),
    )
