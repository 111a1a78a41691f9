"""`python manage.py writes_retry --request-id ID` / `--failed --since 2h`: put failed writes
back in the request log. Each is pending again, its attempts cleared, and placed at the end
of its object's queue: it is applied after the writes of its object accepted before the
retry, as if it had been sent again now (applying it at its old place would reorder it
against writes already applied)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.durations import duration_parse
from writes.models import WriteRequest
from writes.services import write_requests_retry


def since_parse(text: str) -> datetime:
    """ "2h" (that long ago) or an ISO date-time."""
    try:
        return timezone.now() - duration_parse(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(
            f"--since {text!r}: a duration (2h, 3d) or an ISO date-time (2026-11-28T10:00)"
        ) from None
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


class Command(BaseCommand):
    help = "Put failed writes back: --request-id ID (repeatable) or --failed --since 2h."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--request-id", action="append", default=[], dest="request_ids")
        parser.add_argument("--failed", action="store_true", help="every failed write ...")
        parser.add_argument("--since", help="... that failed since: 2h, 3d or a date-time")

    def handle(self, *args: Any, **options: Any) -> None:
        ids, failed, since = options["request_ids"], options["failed"], options["since"]
        if since and not failed:
            raise CommandError("--since goes with --failed")
        if failed and not since:
            raise CommandError("--failed needs --since (e.g. --since 2h)")
        if not ids and not failed:
            raise CommandError("name the writes: --request-id ID, or --failed --since 2h")
        retried = write_requests_retry(
            request_ids=ids, failed_since=since_parse(since) if since else None
        )
        for request_id in retried:
            self.stdout.write(f"{request_id}: pending again")
        for request_id in sorted(set(ids) - set(retried)):
            state = (
                WriteRequest.objects.filter(request_id=request_id)
                .values_list("state", flat=True)
                .first()
            )
            self.stderr.write(
                f"{request_id}: " + (f"not failed ({state})" if state else "no such request")
            )
        self.stdout.write(f"{len(retried)} write(s) put back")
        if ids and len(retried) < len(set(ids)):
            raise SystemExit(1)
