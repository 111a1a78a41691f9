"""`python manage.py writes_status [--json] [--watch]`: the request log, partition by
partition: who owns it and since when, what waits and for how long, what its drains did."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.live import Live
from rich.table import Table

from writes.selectors import partitions_overview

COLUMNS = (
    ("partition", "part"),
    ("owner", "owner"),
    ("owner_for_s", "since"),
    ("state", "drain"),
    ("pending", "pending"),
    ("oldest_pending_s", "oldest"),
    ("finished_last_minute", "done/min"),
    ("last_drain_ago_s", "last drain"),
)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.0f}m" if value < 7200 else f"{value / 3600:.1f}h"


def overview_table(overview: dict[str, Any]) -> Table:
    """The overview as a rich table (the command and its --watch)."""
    table = Table(
        title="racefree request log (since: owned for; oldest: oldest pending write's wait)",
        title_justify="left",
    )
    for key, title in COLUMNS:
        table.add_column(title, justify="left" if key == "owner" else "right", no_wrap=True)
    for row in overview["partitions"]:
        last = row["last_drain_ago_s"]
        table.add_row(
            str(row["partition"]),
            row["owner"] or ("?" if "redis" in overview["unavailable"] else "[bold red]none[/]"),
            _seconds(row["owner_for_s"]),
            row["state"] or "-",
            "?" if row["pending"] is None else f"{row['pending']:,}",
            _seconds(row["oldest_pending_s"]),
            "-" if row["finished_last_minute"] is None else f"{row['finished_last_minute']:,}",
            "-" if last is None else f"{_seconds(last)} ago ({row['last_drain_requests']})",
        )
    for service, reason in overview["unavailable"].items():
        table.caption = f"[yellow]{service} unreadable: {reason}[/]"
    return table


class Command(BaseCommand):
    help = "Show each partition: owner, lease age, pending, oldest pending age, recent drains."

    def add_arguments(self, parser: CommandParser) -> None:
        output = parser.add_mutually_exclusive_group()
        output.add_argument("--json", action="store_true", help="print JSON, once")
        output.add_argument("--watch", action="store_true", help="redraw every --interval")
        parser.add_argument("--interval", type=float, default=1.0, help="seconds (--watch)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["interval"] <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        if options["json"]:
            self.stdout.write(json.dumps(partitions_overview(), indent=2))
            return
        console = Console()
        if not options["watch"]:
            console.print(overview_table(partitions_overview()))
            return
        with Live(overview_table(partitions_overview()), console=console, screen=False) as live:
            try:
                while True:
                    time.sleep(options["interval"])
                    live.update(overview_table(partitions_overview()))
            except KeyboardInterrupt:
                pass
