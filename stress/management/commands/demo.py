"""The demo, as a user runs the product: the API (gunicorn), one worker per partition and
Flower; a real concurrent burst through the HTTP API from several processes; a summary with
every invariant checked; then everything keeps running for a look in Flower until Ctrl-C."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from rest_framework.authtoken.models import Token
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stress.audit import AuditReport, burst_audit
from stress.burst import ApiTarget, run_burst, wait_until_settled
from stress.preflight import require_migrated_database
from stress.workload import workload_create
from workers.supervisor import (
    Supervisor,
    flower_spec,
    partition_worker_specs,
    wait_for_http,
    wait_for_workers,
    web_spec,
)


class Command(BaseCommand):
    help = "Start the API, the partition workers and Flower; send a burst; print a summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--requests", type=int, default=4000)
        parser.add_argument("--producers", type=int, default=4)
        parser.add_argument("--images", type=int, default=20)
        parser.add_argument("--quotas", type=int, default=20)
        parser.add_argument("--limit", type=int, default=100, help="each quota's limit")
        parser.add_argument("--hot", type=float, default=0.5, help="share on the hottest tenth")
        parser.add_argument("--web-port", type=int, default=8000)
        parser.add_argument("--flower-port", type=int, default=5555)
        parser.add_argument(
            "--exit",
            action="store_true",
            help="stop everything after the summary (default when not on a terminal or CI)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        console = Console()
        for port in (options["web_port"], options["flower_port"]):
            if _port_busy(port):
                raise CommandError(
                    f"port {port} is in use; pick another (--web-port/--flower-port)"
                )
        require_migrated_database()
        flower_auth = settings.FLOWER_BASIC_AUTH or f"demo:{secrets.token_urlsafe(9)}"
        log_dir = Path(settings.BASE_DIR) / "var" / "log"
        console.rule("[bold]racefree demo")
        database = settings.DATABASES["default"]
        if database["ENGINE"].endswith("sqlite3"):
            console.print(
                "[bold yellow]WARNING: embedded SQLite fallback, not PostgreSQL[/] "
                f"({database['NAME']}): SQLite serializes every write, so this shows "
                "correctness, not the product's concurrency or speed. Start PostgreSQL for that."
            )
            database_label = "SQLite file"
        else:
            database_label = "PostgreSQL database"
        console.print(
            f"{database_label} [bold]{database['NAME']}[/], broker "
            f"[bold]{settings.CELERY_BROKER_URL}[/], {settings.WRITE_PARTITIONS} partitions, "
            f"dispatch [bold]{settings.WRITE_DISPATCH}[/]; process logs in {log_dir}/"
        )
        stack = Supervisor(
            [
                web_spec(options["web_port"]),
                flower_spec(options["flower_port"]),
                *partition_worker_specs(range(settings.WRITE_PARTITIONS)),
            ],
            log_dir=log_dir,
            env={"FLOWER_BASIC_AUTH": flower_auth},
        )
        stack.start()
        try:
            self._wait_for_stack(console, options, flower_auth)
            report, seconds = self._burst(console, options)
            self._summary(console, report, seconds, options, flower_auth)
            if not options["exit"] and sys.stdin.isatty() and not _ci():
                console.print("everything keeps running: press [bold]Ctrl-C[/] to stop it")
                stack.run_until_signalled()
        finally:
            console.print("stopping the API, the workers and Flower…")
            stack.stop()
        if not report.ok:
            raise SystemExit(1)

    def _wait_for_stack(self, console: Console, options: dict[str, Any], auth: str) -> None:
        with console.status("starting the API, Flower and one worker per partition…"):
            wait_for_http(f"http://127.0.0.1:{options['web_port']}/healthz", timeout=90)
            wait_for_http(f"http://127.0.0.1:{options['flower_port']}/healthcheck", timeout=90)
            wait_for_workers({f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)}, timeout=90)
        console.print(f"API, Flower and {settings.WRITE_PARTITIONS} partition workers are up")

    def _burst(self, console: Console, options: dict[str, Any]) -> tuple[AuditReport, float]:
        call_command("create_api_user", "demo", role="operator", stdout=_Null())
        token = Token.objects.get(user__username="demo").key
        owner = get_user_model().objects.get(username="demo")
        workload = workload_create(
            images=options["images"],
            quotas=options["quotas"],
            quota_limit=options["limit"],
            hot=options["hot"],
            owner=owner,
        )
        api = ApiTarget(base_url=f"http://127.0.0.1:{options['web_port']}", token=token)
        total = options["requests"]
        console.print(
            f"sending {total} writes (tag additions/removals and quota consumptions/refills) "
            f"to {options['images']} images and {options['quotas']} quotas from "
            f"{options['producers']} processes through the HTTP API"
        )
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=console) as progress:
            sending = progress.add_task("accepted (202)", total=total)
            applying = progress.add_task("applied       ", total=total)
            started = time.monotonic()
            sent = run_burst(
                workload=workload,
                requests=total,
                producers=options["producers"],
                api=api,
                on_progress=lambda done: progress.update(sending, completed=done),
            )
            wait_until_settled(
                [s.request_id for s in sent if s.accepted],
                on_progress=lambda done, _: progress.update(applying, completed=done),
            )
            seconds = time.monotonic() - started
        return burst_audit(sent), seconds

    def _summary(
        self,
        console: Console,
        report: AuditReport,
        seconds: float,
        options: dict[str, Any],
        flower_auth: str,
    ) -> None:
        table = Table(title="burst summary", show_header=False)
        table.add_row("requests sent", f"{report.sent} from {options['producers']} processes")
        table.add_row("accepted (202)", str(report.accepted))
        table.add_row("rejected (4xx/5xx)", str(report.rejected))
        table.add_row("applied", str(report.applied))
        table.add_row("refused (quota ran out)", str(report.refused))
        table.add_row("failed", str(report.failed))
        table.add_row("lost", str(report.lost))
        table.add_row("applied twice / misapplied", str(report.doubled))
        table.add_row("per-object order violations", str(report.order_violations))
        table.add_row("throughput", f"{report.accepted / seconds:.0f} writes/s ({seconds:.1f}s)")
        for name, check in report.invariants.items():
            mark = "[green]ok[/]" if check["ok"] else f"[red]FAILED[/] {check['detail']}"
            table.add_row(f"invariant: {name}", mark)
        console.print(table)
        for example in report.examples:
            console.print(f"[red]{example}")
        verdict = "[green]all invariants hold" if report.ok else "[red]INVARIANTS BROKEN"
        console.print(verdict)
        user, password = flower_auth.split(":", 1)
        console.print(
            f"Flower: http://127.0.0.1:{options['flower_port']}/ (user [bold]{user}[/], "
            f"password [bold]{password}[/])\n"
            f"API docs: http://127.0.0.1:{options['web_port']}/api/docs/ (token: "
            f"`manage.py create_api_user demo --role operator`)"
        )


class _Null:
    def write(self, text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _port_busy(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
