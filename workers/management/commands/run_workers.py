"""Run the partition workers of this host.

    python manage.py run_workers --processes 2     # the same command on every host
    python manage.py run_workers --partitions 0-3  # or fixed ranges: host A 0-3, host B 4-7

`--processes M`: M worker processes that share the partitions with every other live worker
process of the cluster, each consuming several partition queues, taking and giving
partitions as processes come and go (a balanced assignment: the most and least loaded
processes differ by at most one partition). `--partitions`: one single-threaded consumer per
partition of the range (plus `--standbys` hot standbys each), as before. Either way dead
processes are restarted, and Ctrl-C (SIGTERM) stops them all, each handing its partitions
over after its current drain.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.routing import parse_partitions
from workers.supervisor import Supervisor, member_specs, partition_worker_specs


class Command(BaseCommand):
    help = "Run this host's partition workers (--processes M, or --partitions 0-3)."

    def add_arguments(self, parser: CommandParser) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--processes",
            type=int,
            help="worker processes sharing the partitions with the rest of the cluster",
        )
        mode.add_argument(
            "--partitions",
            default=None,
            help='fixed: e.g. "0-7", "0,2,4", "4-7" (default: all of 0-WRITE_PARTITIONS-1)',
        )
        parser.add_argument(
            "--standbys", type=int, default=0, help="fixed mode: standby processes per partition"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["processes"] is not None:
            if options["processes"] < 1:
                raise CommandError("--processes must be at least 1")
            if options["standbys"]:
                raise CommandError("--standbys goes with --partitions (every process stands by)")
            supervisor = Supervisor(member_specs(options["processes"]))
            self.stdout.write(
                f"running {options['processes']} worker processes sharing the "
                f"{settings.WRITE_PARTITIONS} partitions with the cluster; Ctrl-C stops them"
            )
        else:
            if options["standbys"] < 0:
                raise CommandError("--standbys must not be negative")
            spec = options["partitions"] or f"0-{settings.WRITE_PARTITIONS - 1}"
            try:
                partitions = parse_partitions(spec)
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            supervisor = Supervisor(
                partition_worker_specs(partitions, standbys=options["standbys"])
            )
            self.stdout.write(
                f"running partitions {spec} ({len(partitions)} workers, "
                f"{options['standbys']} standby each); Ctrl-C stops them"
            )
        supervisor.start()
        supervisor.run_until_signalled()
