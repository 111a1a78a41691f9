"""`python manage.py writes_prune --older-than 3d`: delete final request rows accepted
longer ago than that, now, in bounded batches (the partition owners do it on their own every
PRUNE_INTERVAL for REQUEST_LOG_RETENTION). Pending rows are never deleted."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.durations import duration_parse
from writes.services import write_requests_prune


class Command(BaseCommand):
    help = "Delete final request rows older than --older-than (e.g. 3d), in batches."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than", required=True, help="a duration: 90m, 12h, 3d, 2w")
        parser.add_argument("--partition", type=int, help="only this partition (default: all)")
        parser.add_argument("--batch", type=int, default=settings.REQUEST_LOG_PRUNE_BATCH)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            older_than = duration_parse(options["older_than"])
        except ValueError as exc:
            raise CommandError(f"--older-than: {exc}") from None
        partition = options["partition"]
        if partition is not None and not 0 <= partition < settings.WRITE_PARTITIONS:
            raise CommandError(f"--partition must be in 0-{settings.WRITE_PARTITIONS - 1}")
        if options["batch"] < 1:
            raise CommandError("--batch must be at least 1")
        deleted = write_requests_prune(
            older_than=older_than, partition=partition, batch_size=options["batch"]
        )
        self.stdout.write(f"deleted {deleted} final request rows older than {older_than}")
