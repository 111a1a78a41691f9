"""`manage.py stress`: the seeds' ProcessPoolExecutor, grown up.

One run = one scenario (tags or quota) x one strategy: fresh objects, the workers the
strategy needs, producer processes released together, then metrics and invariant checks.
"""

from __future__ import annotations

import multiprocessing
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, OperationalError
from django.db.models import Sum

from core.bulk_sql import chunks
from quotas.models import Quota, QuotaLedgerEntry
from stress import producer_process, strategies
from stress.models import StressEvent
from stress.workload import TAG_VOCABULARY, Workload, workload_create
from workers.supervisor import (
    ChildSpec,
    Supervisor,
    child_environment,
    manage_py,
    partition_worker_specs,
    wait_for_workers,
)
from writes import publishing
from writes.counters import counter_totals
from writes.invariants import invariants_check
from writes.models import WriteRequest
from writes.publishing import DRAIN_TASK
from writes.services import WriteSpec, write_request_accept, write_requests_accept

SCENARIOS = ("tags", "quota")
# A small vocabulary: concurrent writers of one image keep colliding on the same pairs.
STRESS_TAGS = TAG_VOCABULARY[:6]


@dataclass
class StressConfig:
    scenario: str = "quota"
    strategy: str = "coalesced"
    objects: int = 1
    requests: int = 2000
    producers: int = 4
    workers: int = 2
    hot: float = 0.9
    rate: float | None = None  # total writes/s the producers aim for (None: flat out)
    # partitioned/coalesced: writes per acceptance call (1 = one request each, as the API
    # does; more = a client submitting batches through write_requests_accept).
    accept_batch: int = 1

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}")
        if self.strategy not in strategies.STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(strategies.STRATEGIES)}")
        for name in ("objects", "requests", "producers", "workers", "accept_batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 0 < self.hot <= 1:
            raise ValueError("hot must be a share of the traffic: above 0, at most 1")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be above 0 writes/s")


@dataclass
class StressResult:
    config: dict[str, Any]
    requests: int = 0
    accepted: int = 0
    completed: int = 0
    seconds: float = 0.0
    throughput: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    invariants: dict[str, bool] = field(default_factory=dict)

    @property
    def invariants_ok(self) -> bool:
        return all(self.invariants.values())

    @property
    def failures(self) -> int:
        """Errors the strategy did not recover from (retried serialization failures aside)."""
        return sum(n for kind, n in self.errors.items() if not kind.endswith("(retried)"))

    @property
    def broke(self) -> bool:
        """The run showed the race: errors, lost updates, or broken invariants."""
        return bool(self.failures) or not self.invariants_ok

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "invariants_ok": self.invariants_ok,
            "broke": self.broke,
            "failures": self.failures,
        }


def run_stress(
    config: StressConfig, *, on_progress: Callable[[str, int, int], None] | None = None
) -> StressResult:
    """Run one scenario x strategy; report what happened."""
    if config.strategy not in strategies.STRATEGIES or config.scenario not in SCENARIOS:
        raise ValueError(f"unknown strategy/scenario {config.strategy}/{config.scenario}")
    run_id = uuid.uuid4().hex[:12]
    objects = config.objects
    workload = workload_create(
        images=objects if config.scenario == "tags" else 0,
        quotas=objects if config.scenario == "quota" else 0,
        quota_limit=config.requests,
        hot=config.hot,
    )
    overrides = {"WRITE_PARTITIONS": config.workers}
    if config.strategy in strategies.REQUEST_LOG:
        overrides["WRITE_DISPATCH"] = "message" if config.strategy == "partitioned" else "coalesced"
    fleet = _start_workers(config, overrides)
    # Drains are published by the partitions' owners, not by the producers: counted in Redis.
    drains_before = counter_totals().get("drains_published", 0)
    try:
        records, published = _produce(config, workload, run_id, overrides, on_progress)
        result = _collect(config, workload, run_id, records, published, on_progress)
        result.messages += counter_totals().get("drains_published", 0) - drains_before
    finally:
        if fleet is not None:
            fleet.stop()
    return result


def _start_workers(config: StressConfig, overrides: dict[str, Any]) -> Supervisor | None:
    if config.strategy in strategies.QUEUED_BASELINES:
        specs = [
            ChildSpec(
                "stress-workers",
                manage_py(
                    "partition_worker",
                    "--queue",
                    strategies.STRESS_QUEUE,
                    "--pool",
                    "prefork",
                    "--concurrency",
                    str(config.workers),
                ),
            )
        ]
        queues = {strategies.STRESS_QUEUE}
    elif config.strategy in strategies.REQUEST_LOG:
        specs = partition_worker_specs(range(config.workers))
        queues = {f"writes.{p}" for p in range(config.workers)}
    else:
        return None
    fleet = Supervisor(specs, env=child_environment(**overrides), quiet=True)
    fleet.start()
    try:
        wait_for_workers(queues, timeout=120)
    except Exception:
        fleet.stop()
        raise
    return fleet


def _produce(
    config: StressConfig,
    workload: Workload,
    run_id: str,
    overrides: dict[str, Any],
    on_progress: Callable[[str, int, int], None] | None,
) -> tuple[list[dict[str, Any]], int]:
    context = multiprocessing.get_context("spawn")
    progress = context.Value("i", 0)
    shares = [
        config.requests // config.producers + (1 if p < config.requests % config.producers else 0)
        for p in range(config.producers)
    ]
    per_producer_rate = config.rate / config.producers if config.rate else None
    jobs = [
        {
            "target": "stress.runner:produce_share",
            "config": config,
            "workload": workload,
            "run_id": run_id,
            "producer": p,
            "count": share,
            "rate": per_producer_rate,
        }
        for p, share in enumerate(shares)
    ]
    barrier = context.Barrier(config.producers)
    with context.Pool(
        config.producers,
        initializer=producer_process.init,
        initargs=(child_environment(**overrides), progress, barrier),
    ) as pool:
        pending = pool.map_async(producer_process.run, jobs, chunksize=1)
        while not pending.ready():
            pending.wait(0.2)
            if on_progress:
                on_progress("sent", progress.value, config.requests)
        results = pending.get()
    records = [record for per_producer in results for record in per_producer["records"]]
    return records, sum(per_producer["published"] for per_producer in results)


def produce_share(
    *,
    config: StressConfig,
    workload: Workload,
    run_id: str,
    producer: int,
    count: int,
    rate: float | None,
    progress: Any,
) -> dict[str, Any]:
    """One producer process's share: submit `count` writes the strategy's way."""
    from workers.celery import app as celery_app

    rng = random.Random(producer * 7919 + 1)
    records: list[dict[str, Any]] = []
    started = time.monotonic()
    sent_messages = 0
    batch: list[tuple[dict[str, Any], WriteSpec]] = []
    batched = config.strategy in strategies.REQUEST_LOG and config.accept_batch > 1
    for i in range(count):
        if rate:
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
        request_id = f"{run_id}-{producer}-{i}"
        ids = workload.quota_ids if config.scenario == "quota" else workload.image_ids
        object_id = workload.pick(rng, ids)
        tag = rng.choice(STRESS_TAGS)
        record = {
            "request_id": request_id,
            "object_id": object_id,
            "start": time.time(),
            "end": 0.0,
            "error": "",
            "outcome": "",
        }
        if batched:
            batch.append((record, _spec(config, object_id, tag, request_id)))
            if len(batch) == config.accept_batch or i == count - 1:
                _accept_batch(batch)
                records += [r for r, _ in batch]
                _advance(progress, len(batch))
                batch = []
            continue
        try:
            record["outcome"] = _submit(config, run_id, object_id, tag, request_id, celery_app)
            if config.strategy in strategies.QUEUED_BASELINES:
                sent_messages += 1
        except IntegrityError:
            record["error"] = "IntegrityError"
        except OperationalError as exc:
            record["error"] = _kind_of(exc)
        except Exception as exc:
            record["error"] = type(exc).__name__
        record["end"] = time.time()
        records.append(record)
        _advance(progress, 1)
    own_messages = sum(n for name, n in publishing.published.items() if name != DRAIN_TASK)
    return {"records": records, "published": sent_messages + own_messages}


def _advance(progress: Any, n: int) -> None:
    if progress is not None:
        with progress.get_lock():
            progress.value += n


def _spec(config: StressConfig, object_id: int, tag: str, request_id: str) -> WriteSpec:
    if config.scenario == "quota":
        return WriteSpec("quotas.consume", object_id, {"amount": 1}, request_id)
    return WriteSpec("tagging.add_tags", object_id, {"tags": [tag]}, request_id)


def _accept_batch(batch: list[tuple[dict[str, Any], WriteSpec]]) -> None:
    error = ""
    try:
        write_requests_accept(writes=[spec for _, spec in batch])
    except Exception as exc:
        error = type(exc).__name__
    now = time.time()
    for record, _ in batch:
        record["end"], record["error"] = now, error
        record["outcome"] = "" if error else "accepted"


def _submit(
    config: StressConfig, run_id: str, object_id: int, tag: str, request_id: str, celery_app: Any
) -> str:
    strategy, quota = config.strategy, config.scenario == "quota"
    if strategy == "naive":
        if quota:
            return strategies.naive_consume_rollback_unsafe(
                quota_id=object_id, request_id=request_id
            ).outcome
        return strategies.naive_add_tag_rollback_unsafe(image_id=object_id, tag_name=tag).outcome
    if strategy == "atomic":
        from quotas.services import quota_consume
        from tagging.services import image_add_tags

        if quota:
            outcome = quota_consume(quota_id=object_id, amount=1, request_id=request_id)
            return "granted" if outcome.granted else "refused"
        result = image_add_tags(image_id=object_id, tag_names=[tag])
        return "linked" if result.added else "already"
    if strategy in strategies.QUEUED_BASELINES:
        kwargs = {"request_id": request_id, "run_id": run_id, "accepted_at": time.time()}
        if quota:
            name, kwargs["quota_id"] = f"stress.{strategy}_consume", object_id
        else:
            name, kwargs["image_id"], kwargs["tag_name"] = (
                f"stress.{strategy}_add_tag",
                object_id,
                tag,
            )
        celery_app.send_task(name, kwargs=kwargs, queue=strategies.STRESS_QUEUE)
        return "sent"
    kind, payload = (
        ("quotas.consume", {"amount": 1}) if quota else ("tagging.add_tags", {"tags": [tag]})
    )
    write_request_accept(kind=kind, object_id=object_id, payload=payload, request_id=request_id)
    return "accepted"


def _kind_of(exc: OperationalError) -> str:
    code = getattr(exc.__cause__, "sqlstate", None)
    return {"40001": "serialization failure", "40P01": "deadlock"}.get(code, "OperationalError")


def _collect(
    config: StressConfig,
    workload: Workload,
    run_id: str,
    records: list[dict[str, Any]],
    published: int,
    on_progress: Callable[[str, int, int], None] | None,
) -> StressResult:
    result = StressResult(config=asdict(config), requests=len(records))
    errors: Counter[str] = Counter(r["error"] for r in records if r["error"])
    accepted = [r for r in records if not r["error"]]
    result.accepted = len(accepted)
    first = min(r["start"] for r in records)
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()

    if config.strategy in ("naive", "atomic"):
        last = max(r["end"] for r in records)
        latencies = [r["end"] - r["start"] for r in accepted]
        outcomes.update(r["outcome"] for r in accepted)
        completed = len(accepted)
    elif config.strategy in strategies.QUEUED_BASELINES:
        _wait(lambda: StressEvent.objects.filter(run_id=run_id).count(), len(accepted), on_progress)
        events = list(
            StressEvent.objects.filter(run_id=run_id).values_list(
                "accepted_at", "committed_at", "outcome", "retries"
            )
        )
        last = max(e[1] for e in events) if events else first
        latencies = [e[1] - e[0] for e in events]
        outcomes.update(e[2] for e in events)
        result.retries = sum(e[3] for e in events)
        if config.strategy == "serializable":
            errors["serialization failure (retried)"] += result.retries
        completed = len(events)
    else:
        ids = [r["request_id"] for r in accepted]
        _wait(lambda: _final_count(ids), len(ids), on_progress)
        rows = list(
            WriteRequest.objects.filter(request_id__in=ids).values_list(
                "accepted_at", "finished_at", "state"
            )
        )
        done = [r for r in rows if r[1] is not None]
        last = max(r[1] for r in done).timestamp() if done else first
        latencies = [(r[1] - r[0]).total_seconds() for r in done]
        outcomes.update(r[2] for r in rows)
        completed = len(done)

    result.completed = completed
    result.seconds = round(max(last - first, 1e-6), 3)
    result.throughput = round(completed / result.seconds, 1)
    result.latency_ms = _percentiles(latencies)
    result.messages = published
    result.outcomes = dict(outcomes)
    result.invariants = _invariants(config, workload)
    lost = _lost_updates(config, workload)
    if lost:
        errors["lost update"] = lost
    not_completed = result.accepted - completed
    if not_completed:
        errors["never completed"] = not_completed
    result.errors = dict(errors)
    return result


def _final_count(request_ids: list[str]) -> int:
    return sum(
        WriteRequest.objects.filter(request_id__in=chunk).exclude(state="pending").count()
        for chunk in chunks(request_ids)
    )


def _wait(
    count: Callable[[], int],
    total: int,
    on_progress: Callable[[str, int, int], None] | None,
    timeout: float = 600,
) -> None:
    deadline = time.monotonic() + timeout
    done = count()
    while done < total and time.monotonic() < deadline:
        if on_progress:
            on_progress("applied", done, total)
        time.sleep(0.1)
        done = count()
    if on_progress:
        on_progress("applied", done, total)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "mean": round(statistics.fmean(ordered) * 1000, 2),
    }


def _lost_updates(config: StressConfig, workload: Workload) -> int:
    """Grants recorded in the ledger that the quota row does not reflect."""
    if config.scenario != "quota":
        return 0
    lost = 0
    granted = dict(
        QuotaLedgerEntry.objects.filter(quota_id__in=workload.quota_ids, outcome="granted")
        .values("quota_id")
        .annotate(n=Sum("amount"))
        .values_list("quota_id", "n")
    )
    for quota in Quota.objects.filter(pk__in=workload.quota_ids):
        lost += max(0, granted.get(quota.pk, 0) - (quota.limit - quota.remaining))
    return lost


def _invariants(config: StressConfig, workload: Workload) -> dict[str, bool]:
    if config.scenario == "quota":
        return invariants_check({"quotas.quota": workload.quota_ids}).passed()
    return invariants_check({"tagging.image": workload.image_ids}).passed()


def stress_settings_summary() -> str:
    """Where a run writes: for the command's banner."""
    db = settings.DATABASES["default"]
    return f"database {db['NAME']}, broker {settings.CELERY_BROKER_URL}"
