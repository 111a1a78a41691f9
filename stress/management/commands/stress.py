"""`manage.py stress`: compare write strategies on the seeds' races, under load."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stress.preflight import require_migrated_database
from stress.runner import SCENARIOS, StressConfig, StressResult, run_stress
from stress.strategies import STRATEGIES


class Command(BaseCommand):
    help = (
        "Run a concurrent burst of one scenario (tags, quota) with one or more strategies "
        "(naive, lock, serializable, atomic, partitioned, coalesced); report throughput, "
        "latency, errors and invariants."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scenario", choices=SCENARIOS, default="quota")
        parser.add_argument(
            "--strategy",
            action="append",
            choices=STRATEGIES,
            help="repeat for several; default: all",
        )
        parser.add_argument("--objects", type=int, default=1, help="images or quotas")
        parser.add_argument("--requests", type=int, default=2000)
        parser.add_argument("--producers", type=int, default=4, help="producer processes")
        parser.add_argument(
            "--workers",
            type=int,
            default=2,
            help="worker processes (partitions, or Celery concurrency)",
        )
        parser.add_argument(
            "--hot",
            type=float,
            default=0.9,
            help="share of traffic on the hottest tenth of the objects",
        )
        parser.add_argument(
            "--rate",
            type=float,
            default=None,
            help="total writes/s to aim for (default: as fast as possible)",
        )
        parser.add_argument(
            "--accept-batch",
            type=int,
            default=1,
            help="partitioned/coalesced: writes accepted per call (default 1, like the API)",
        )
        parser.add_argument("--json", action="store_true", help="print JSON, no table")

    def handle(self, *args: Any, **options: Any) -> None:
        console = Console(stderr=options["json"])
        try:
            configs = [
                StressConfig(
                    scenario=options["scenario"],
                    strategy=strategy,
                    objects=options["objects"],
                    requests=options["requests"],
                    producers=options["producers"],
                    workers=options["workers"],
                    hot=options["hot"],
                    rate=options["rate"],
                    accept_batch=options["accept_batch"],
                )
                for strategy in options["strategy"] or STRATEGIES
            ]
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        require_migrated_database()
        results: list[StressResult] = []
        for config in configs:
            strategy = config.strategy
            columns = (
                TextColumn(f"{strategy:>12} {{task.description}}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console, transient=True) as progress:
                results.append(run_stress(config, on_progress=progress_updater(progress)))
            console.print(f"{strategy}: done ({results[-1].throughput:.0f} writes/s)")
        if options["json"]:
            self.stdout.write(json.dumps([r.as_dict() for r in results], indent=2))
        else:
            console.print(results_table(results))


def progress_updater(progress: Progress) -> Any:
    """A run_stress progress callback drawing one bar per stage ("sent", "applied")."""
    bars: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = progress.add_task(stage, total=total)
        progress.update(bars[stage], completed=done)

    return update


def results_table(results: list[StressResult]) -> Table:
    """A side-by-side table of stress results."""
    first = results[0].config
    table = Table(
        title=f"{first['scenario']}: {first['requests']} writes, {first['objects']} "
        f"object(s), {first['producers']} producers, {first['workers']} workers"
    )
    for column in (
        "strategy",
        "writes/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "retries",
        "messages",
        "invariants",
    ):
        table.add_column(column, justify="right" if column != "strategy" else "left")
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
        table.add_row(
            r.config["strategy"],
            f"{r.throughput:.0f}",
            str(r.latency_ms.get("p50", "-")),
            str(r.latency_ms.get("p95", "-")),
            str(r.latency_ms.get("p99", "-")),
            errors,
            str(r.retries),
            str(r.messages),
            "[green]hold[/]" if r.invariants_ok else "[red]BROKEN[/]",
        )
    return table
