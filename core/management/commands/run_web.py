"""Serve the API: `python manage.py run_web [--host 0.0.0.0] [--port 8000]`.

Granian (a Rust HTTP server running the Django WSGI app in a pool of Python threads), with
WEB_WORKERS processes of WEB_THREADS threads each. Measured beside gunicorn's gthread workers
with the same processes and threads (docs/BENCHMARKS.md, "The server"): the same Django view
costs about half the CPU per request, because the HTTP parsing and the connection handling
are not Python code. Threads, not processes only: a `?wait=` request holds its thread while it
waits, and concurrent writes of one process share one INSERT (writes/acceptance.py).
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


def web_command(*, host: str, port: int) -> list[str]:
    """The command line that serves the API."""
    granian = shutil.which("granian", path=os.path.dirname(sys.executable)) or "granian"
    return [
        granian,
        "--interface",
        "wsgi",
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(settings.WEB_WORKERS),
        "--blocking-threads",
        str(settings.WEB_THREADS),
        "--no-ws",
        "--respawn-failed-workers",
        "--log-level",
        "warning",
        *(["--access-log"] if settings.WEB_ACCESS_LOG else []),
        "project.wsgi:application",
    ]


class Command(BaseCommand):
    help = "Serve the API (granian: WEB_WORKERS processes x WEB_THREADS threads)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        argv = web_command(host=options["host"], port=options["port"])
        sys.stdout.flush()
        os.execv(argv[0], argv)
