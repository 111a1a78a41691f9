"""Run the partition workers of this host: `manage.py run_workers --partitions 0-7`.

Each partition gets one single-threaded consumer process (plus `--standbys` hot standbys).
Give each host its own partitions to spread them over machines (host A `0-3`, host B `4-7`),
or the same partitions on two hosts for failover.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.routing import parse_partitions
from workers.supervisor import Supervisor, partition_worker_specs


class Command(BaseCommand):
    help = "Run one Celery consumer per write partition on this host, restarting any that die."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--partitions",
            default=None,
            help='e.g. "0-7", "0,2,4", "4-7" (default: all of 0-WRITE_PARTITIONS-1)',
        )
        parser.add_argument(
            "--standbys", type=int, default=0, help="extra standby processes per partition"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        spec = options["partitions"] or f"0-{settings.WRITE_PARTITIONS - 1}"
        try:
            partitions = parse_partitions(spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        supervisor = Supervisor(partition_worker_specs(partitions, standbys=options["standbys"]))
        self.stdout.write(
            f"running partitions {spec} ({len(partitions)} workers, "
            f"{options['standbys']} standby each); Ctrl-C stops them"
        )
        supervisor.start()
        supervisor.run_until_signalled()
