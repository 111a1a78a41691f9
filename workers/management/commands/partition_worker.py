"""A worker process for write partitions (`run_workers` starts many of these):

- `--partition N`: wait as a standby until it owns partition N, then run a single-threaded
  Celery consumer of `writes.N`;
- `--elastic`: join the cluster's live worker processes and consume whichever partitions the
  assignment gives this one (workers/ownership.py), taking and giving them as processes come
  and go."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from celery.signals import worker_ready, worker_shutting_down
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers import time_limits
from workers.broker import broker_is_redis
from workers.celery import app
from workers.leases import PartitionLease
from workers.ownership import PartitionOwner
from workers.routing import IDLE_QUEUE, SHARED_QUEUE, queue_name

logger = logging.getLogger("workers.partition_worker")

# Exit code after stepping down (lease lost): the supervisor restarts the process as a standby.
EXIT_STEPPED_DOWN = 75


class Command(BaseCommand):
    help = "Run the Celery consumer of one write partition (standby until it owns it)."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--partition", type=int, help="the partition number N (writes.N)")
        target.add_argument(
            "--elastic",
            action="store_true",
            help="share the partitions with every live worker process of the cluster",
        )
        target.add_argument(
            "--shared",
            action="store_true",
            help=f"consume {SHARED_QUEUE} (routing bypassed; for proving the DB guards)",
        )
        target.add_argument(
            "--queue", help='consume this plain queue (e.g. the baselines\' "stress" queue)'
        )
        # solo: tasks run inline, one at a time (workers/time_limits.py enforces the limits).
        parser.add_argument("--pool", default="solo", help="Celery pool (default: solo)")
        parser.add_argument("--concurrency", type=int, default=1)
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["shared"] or options["queue"]:
            queue = options["queue"] or SHARED_QUEUE
            self._run_celery(queue, queue, options)
            return
        if options["elastic"]:
            self._run_elastic(options)
            return
        partition = options["partition"]
        if not 0 <= partition < settings.WRITE_PARTITIONS:
            raise CommandError(f"--partition must be in 0-{settings.WRITE_PARTITIONS - 1}")

        lease = PartitionLease(partition) if broker_is_redis() else None
        if lease is not None:
            self._wait_for_lease(lease)
        # On RabbitMQ the queue is single-active-consumer: the broker picks the owner.
        if options["pool"] == "solo":
            time_limits.install()
        owner = PartitionOwner(
            [partition],
            leases={partition: lease},
            on_lost=self._step_down,
            on_hung=lambda: self._abandon([lease]),
        )
        owner.start()
        try:
            self._run_celery(queue_name(partition), f"writes.{partition}", options)
        finally:
            owner.stop()
            if lease is not None:
                lease.release()
        if getattr(self, "_stepped_down", False):
            sys.exit(EXIT_STEPPED_DOWN)

    def _wait_for_lease(self, lease: PartitionLease) -> None:
        announced = False
        while not lease.try_acquire():
            if not announced:
                logger.info(
                    "writes.%s is owned by %s: standing by", lease.partition, lease.holder()
                )
                announced = True
            time.sleep(settings.PARTITION_STANDBY_POLL)
        logger.info("writes.%s: lease acquired by %s", lease.partition, lease.token)

    def _step_down(self) -> None:
        """Lease lost: stop consuming now (warm shutdown); exit hard if that hangs."""
        self._stepped_down = True
        os.kill(os.getpid(), signal.SIGTERM)

        def force_exit() -> None:
            time.sleep(15)
            os._exit(EXIT_STEPPED_DOWN)

        threading.Thread(target=force_exit, daemon=True).start()

    def _abandon(self, leases: list[PartitionLease | None]) -> None:
        """A task is stuck past the hard time limit: free the partitions and end at once. The
        stuck transaction dies with the connection; its writes are still pending."""
        for lease in leases:
            if lease is not None:
                lease.release()
        os._exit(EXIT_STEPPED_DOWN)

    def _run_elastic(self, options: dict[str, Any]) -> None:
        """Consume no partition at first; the owner thread adds (and cancels) the queues of
        the partitions whose leases it takes, once the worker is ready to be told."""
        hostname = f"members.{os.getpid()}@{socket.gethostname()}"
        ready, shutting_down = threading.Event(), threading.Event()
        worker_ready.connect(lambda **_: ready.set(), weak=False)
        worker_shutting_down.connect(lambda **_: shutting_down.set(), weak=False)

        def control(command: str, queue: str) -> None:
            if shutting_down.is_set():
                return  # the worker consumes nothing more anyway
            ready.wait()
            replies = getattr(app.control, command)(
                queue, destination=[hostname], reply=True, timeout=10
            )
            if not replies:
                raise RuntimeError(f"{command} {queue}: the worker did not answer")

        if options["pool"] == "solo":
            time_limits.install()
        owner = PartitionOwner(
            None,
            on_lost=self._step_down,
            on_hung=lambda: self._abandon([h.lease for h in owner.held.values()]),
            consume=lambda queue: control("add_consumer", queue),
            stop_consuming=lambda queue: control("cancel_consumer", queue),
            ready=ready,
        )
        owner.start()
        try:
            self._run_celery(IDLE_QUEUE, "members", options, hostname=hostname)
        finally:
            # A clean stop: finish the current drain, give every partition back at once.
            owner.stop()
            owner.stopped.wait(settings.CELERY_TASK_TIME_LIMIT)

    def _run_celery(
        self, queue: str, name: str, options: dict[str, Any], *, hostname: str | None = None
    ) -> None:
        app.worker_main(
            [
                "worker",
                "--queues",
                queue,
                "--pool",
                options["pool"],
                "--concurrency",
                str(options["concurrency"]),
                "--hostname",
                # Unique per process: a standby on the same host (RabbitMQ runs both as
                # consumers) must not collide with the owner's exclusive control queue.
                hostname or f"{name}.{os.getpid()}@{socket.gethostname()}",
                "--loglevel",
                options["loglevel"],
                *(["--task-events"] if settings.CELERY_WORKER_SEND_TASK_EVENTS else []),
                "--without-gossip",
                "--without-mingle",
            ]
        )
