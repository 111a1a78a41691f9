"""Start, watch, restart and stop the project's processes (partition workers, web, Flower).

`run_workers` uses it for an operator's partitions; the demo and the end-to-end tests use it
for the whole stack. Each child runs in its own session, so a signal to the supervisor's
terminal does not reach it twice, and a test can SIGKILL one child's whole process group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


@dataclass
class ChildSpec:
    """A process to keep running: a name, its command line, extra environment."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    restart: bool = True


def child_environment(**overrides: object) -> dict[str, str]:
    """This process's effective settings as environment for a child process, so that a
    child (a worker, a producer) uses the same database, broker and partitioning even when
    they were changed at run time (tests)."""
    db = connection.settings_dict
    env = {
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", ""),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "WRITE_PARTITIONS": str(settings.WRITE_PARTITIONS),
        "WRITE_DISPATCH": settings.WRITE_DISPATCH,
        "WRITE_ROUTING": settings.WRITE_ROUTING,
        "CELERY_WORKER_SEND_TASK_EVENTS": str(settings.CELERY_WORKER_SEND_TASK_EVENTS).lower(),
        "PYTHONUNBUFFERED": "1",
    }
    if db["ENGINE"].endswith("postgresql"):
        auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
        env["DATABASE_URL"] = f"postgres://{auth}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    else:
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    env.update({key: str(value) for key, value in overrides.items()})
    return {key: value for key, value in env.items() if value}


def manage_py(*args: str) -> list[str]:
    """The command line of a manage.py command, with this interpreter."""
    return [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args]


def partition_worker_specs(
    partitions: Sequence[int], *, standbys: int = 0, pool: str = "solo", concurrency: int = 1
) -> list[ChildSpec]:
    """One worker per partition, plus `standbys` extra processes per partition."""
    specs = []
    for partition in partitions:
        for copy in range(1 + standbys):
            suffix = "" if copy == 0 else f"~standby{copy}"
            specs.append(
                ChildSpec(
                    name=f"writes.{partition}{suffix}",
                    argv=manage_py(
                        "partition_worker",
                        "--partition",
                        str(partition),
                        "--pool",
                        pool,
                        "--concurrency",
                        str(concurrency),
                    ),
                    env={"DB_APPLICATION_NAME": f"racefree-worker-{partition}"},
                )
            )
    return specs


def member_specs(processes: int, *, pool: str = "solo") -> list[ChildSpec]:
    """`processes` elastic worker processes: the cluster's live ones share the partitions."""
    return [
        ChildSpec(
            name=f"member.{index}",
            argv=manage_py("partition_worker", "--elastic", "--pool", pool),
            env={"DB_APPLICATION_NAME": f"racefree-member-{index}"},
        )
        for index in range(processes)
    ]


def web_spec(port: int, *, workers: int | None = None, threads: int | None = None) -> ChildSpec:
    """The API, served by `manage.py run_web` (WEB_WORKERS x WEB_THREADS unless given)."""
    env = {"DB_APPLICATION_NAME": "racefree-web"}
    if workers is not None:
        env["WEB_WORKERS"] = str(workers)
    if threads is not None:
        env["WEB_THREADS"] = str(threads)
    return ChildSpec(name="web", argv=manage_py("run_web", "--port", str(port)), env=env)


def flower_spec(port: int) -> ChildSpec:
    """Flower, behind the basic auth in FLOWER_BASIC_AUTH."""
    return ChildSpec(
        name="flower",
        argv=manage_py("run_flower", "--port", str(port)),
        env={"DB_APPLICATION_NAME": "racefree-flower"},
    )


def wait_for_http(url: str, *, timeout: float = 60.0, auth: tuple[str, str] | None = None) -> None:
    """Block until `url` answers 200."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1, auth=auth).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def wait_for_workers(queues: set[str], *, timeout: float = 60.0) -> None:
    """Block until some Celery worker of every named queue (`writes.3`, ...) answers a ping."""
    from workers.celery import app

    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        # A fresh connection each round: a pooled one may predate a broker restart.
        with app.connection_for_write() as connection:
            replies = app.control.ping(timeout=0.5, connection=connection) or []
        seen = {worker_queue(name) for reply in replies for name in reply}
        if queues <= seen:
            return
    raise TimeoutError(f"no worker answered for: {sorted(queues - seen)}")


def wait_for_members(count: int, *, timeout: float = 60.0) -> None:
    """Block until `count` elastic worker processes are live members (workers/membership)."""
    from workers.membership import live_members

    deadline = time.monotonic() + timeout
    while len(live_members()) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(live_members())} of {count} members came up")
        time.sleep(0.2)


def worker_queue(worker_name: str) -> str:
    """`writes.3.1234@host` -> `writes.3` (partition worker names carry their pid)."""
    return worker_name.split("@")[0].rsplit(".", 1)[0]


@dataclass
class _Child:
    spec: ChildSpec
    process: subprocess.Popen | None = None
    log: IO[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    held: bool = False  # stopped on purpose: not restarted until start_child()


class Supervisor:
    """Keeps a set of child processes running until stopped."""

    def __init__(
        self,
        specs: Sequence[ChildSpec],
        *,
        log_dir: Path | None = None,
        env: dict[str, str] | None = None,
        quiet: bool = False,
    ) -> None:
        self.children = {spec.name: _Child(spec) for spec in specs}
        self.log_dir = log_dir
        self.quiet = quiet  # without a log_dir: discard the children's output
        self.env = {**os.environ, **(env or {})}
        self.stopping = False

    def start(self) -> None:
        for child in self.children.values():
            self._spawn(child)

    def _spawn(self, child: _Child) -> None:
        if child.log is not None:
            child.log.close()
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            child.log = open(self.log_dir / f"{child.spec.name}.log", "ab")  # noqa: SIM115
        child.process = subprocess.Popen(
            child.spec.argv,
            env={**self.env, **child.spec.env},
            stdout=child.log or (subprocess.DEVNULL if self.quiet else None),
            stderr=subprocess.STDOUT if child.log or self.quiet else None,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def pid(self, name: str) -> int | None:
        """The pid of a running child."""
        child = self.children[name]
        return child.process.pid if child.process and child.process.poll() is None else None

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send a signal to a child's whole process group (a crash, for fault injection)."""
        pid = self.pid(name)
        if pid is not None:
            os.killpg(pid, sig)

    def poll(self) -> list[str]:
        """Restart children that exited (with a short back-off); return their names."""
        restarted = []
        now = time.monotonic()
        for name, child in self.children.items():
            if self.stopping or child.process is None or child.process.poll() is None:
                continue
            if not child.spec.restart or child.held:
                continue
            if child.next_start == 0.0:
                logger.warning("%s exited with %s; restarting", name, child.process.returncode)
                child.next_start = now + min(5.0, 0.5 * 2 ** min(child.restarts, 4))
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                self._spawn(child)
                restarted.append(name)
        return restarted

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM every child (warm shutdown), SIGKILL whatever is left after `timeout`."""
        self.stopping = True
        running = [c for c in self.children.values() if c.process and c.process.poll() is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in running:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop in %ss; killing it", child.spec.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()
        for child in self.children.values():
            if child.log:
                child.log.close()

    def supervise_in_background(self, interval: float = 0.2) -> threading.Event:
        """Restart dead children from a thread (as run_workers does in the foreground) until
        the returned event is set."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                self.poll()

        threading.Thread(target=loop, name="supervisor", daemon=True).start()
        return stop

    def start_child(self, name: str) -> None:
        """Start one stopped child again (after `stop_child`)."""
        child = self.children[name]
        child.held = False
        if child.process is None or child.process.poll() is not None:
            self._spawn(child)

    def stop_child(self, name: str, timeout: float = 20.0) -> None:
        """Stop one child (warm shutdown) and keep it stopped: it is not restarted by poll()."""
        child = self.children[name]
        child.held = True
        if child.process and child.process.poll() is None:
            os.killpg(child.process.pid, signal.SIGTERM)
            try:
                child.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.process.pid, signal.SIGKILL)
                child.process.wait()

    def run_until_signalled(self) -> None:
        """Supervise until SIGINT/SIGTERM, then stop everything."""
        received: list[int] = []

        def handler(signum: int, frame: object) -> None:
            received.append(signum)

        previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not received:
                self.poll()
                time.sleep(0.2)
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            self.stop()
