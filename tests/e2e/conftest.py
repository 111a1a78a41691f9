"""Real worker processes for end-to-end tests, against the test database and test broker."""

from __future__ import annotations

import time

import pytest
from django.conf import settings

from workers.celery import app as celery_app
from workers.supervisor import (
    ChildSpec,
    Supervisor,
    child_environment,
    manage_py,
    partition_worker_specs,
    wait_for_workers,
)

redis_only = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis"), reason="partition leases are for Redis"
)
rabbitmq_only = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("amqp"), reason="needs the RabbitMQ broker"
)


@pytest.fixture
def deploy(transactional_db, clean_broker, cache_redis, settings, tmp_path):
    """Start worker processes; they are stopped (and their logs kept in tmp_path) after."""
    fleets: list[Supervisor] = []

    def start(
        *,
        dispatch: str = "message",
        routing: str = "partitioned",
        partitions: int | None = None,
        standbys: int = 0,
        shared_concurrency: int = 4,
        wait: bool = True,
        **env: object,
    ) -> Supervisor:
        settings.WRITE_DISPATCH = dispatch
        settings.WRITE_ROUTING = routing
        if partitions is not None:
            settings.WRITE_PARTITIONS = partitions
        if routing == "shared":
            specs = [
                ChildSpec(
                    "writes.shared",
                    manage_py(
                        "partition_worker",
                        "--shared",
                        "--pool",
                        "prefork",
                        "--concurrency",
                        str(shared_concurrency),
                    ),
                )
            ]
            names = {"writes.shared"}
        else:
            specs = partition_worker_specs(range(settings.WRITE_PARTITIONS), standbys=standbys)
            names = {f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)}
        fleet = Supervisor(
            specs, log_dir=tmp_path / f"fleet{len(fleets)}", env=child_environment(**env)
        )
        fleets.append(fleet)
        fleet.start()
        if wait:
            wait_for_workers(names)
        return fleet

    yield start
    for fleet in fleets:
        fleet.stop()
    for fleet in fleets:
        for log in sorted(fleet.log_dir.glob("*.log")) if fleet.log_dir else []:
            text = log.read_text(errors="replace")
            if "Traceback" in text:
                print(f"--- {log.name} ---\n{text[-3000:]}")


def wait_until_queues_idle(timeout: float = 60) -> None:
    """Every partition queue empty and no worker holding a message, three polls in a row."""
    from workers.broker import queue_depth
    from workers.routing import queue_name

    deadline, idle = time.monotonic() + timeout, 0
    while idle < 3:
        assert time.monotonic() < deadline, "queues never drained"
        # A fresh connection each round: a pooled one may predate a broker restart.
        with celery_app.connection_for_write() as conn:
            inspect = celery_app.control.inspect(timeout=0.5, connection=conn)
            held = [*(inspect.active() or {}).values(), *(inspect.reserved() or {}).values()]
        waiting = sum(queue_depth(queue_name(p)) for p in range(settings.WRITE_PARTITIONS))
        idle = idle + 1 if waiting == 0 and not any(held) else 0
        time.sleep(0.1)
