"""Run Flower for the partition workers, behind basic auth: `manage.py run_flower`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from workers.celery import app
from workers.flower import metrics_protect


class Command(BaseCommand):
    help = "Run Flower (basic auth from FLOWER_BASIC_AUTH, /metrics protected as well)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=5555)
        parser.add_argument("--address", default="127.0.0.1")

    def handle(self, *args: Any, **options: Any) -> None:
        auth = settings.FLOWER_BASIC_AUTH
        user, _, password = auth.partition(":")
        if not user or len(password) < 8 or password.startswith("change-me"):
            raise CommandError(
                'FLOWER_BASIC_AUTH must be "user:password" with a real password (8+ characters):'
                " Flower shows every worker and task and can control workers, so it never runs "
                "without authentication"
            )
        metrics_protect()
        app.start(
            argv=[
                "flower",
                f"--port={options['port']}",
                f"--address={options['address']}",
                f"--basic-auth={auth}",
                # Flower keeps every task it has seen in memory, up to max_tasks: a bound
                # its memory plateaus at (the soak measured it growing until then).
                f"--max_tasks={settings.FLOWER_MAX_TASKS}",
            ]
        )
