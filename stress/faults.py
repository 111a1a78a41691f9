"""Faults injected into a running stack, by the fault-injection tests and the soak: real
restarts of Redis and PostgreSQL, a SIGKILL of a partition's owner."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis
from django.conf import settings

from workers.leases import PartitionLease
from workers.supervisor import Supervisor


def redis_restart_empty(down_for: float = 2.0) -> str:
    """Shut Redis down without saving, wait, start it again empty (its data is lost)."""
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    config = {
        key: value
        for key, value in client.config_get("*").items()
        if key in ("dir", "logfile", "bind", "port")
    }
    with contextlib.suppress(redis.ConnectionError):
        client.shutdown(nosave=True)
    time.sleep(down_for)
    command = [
        "redis-server",
        "--daemonize",
        "yes",
        "--port",
        config.get("port", "6379"),
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    if config.get("bind"):
        command += ["--bind", *config["bind"].split()]
    if config.get("dir") and Path(config["dir"]).is_dir():
        command += ["--dir", config["dir"]]
    if config.get("logfile"):
        command += ["--logfile", config["logfile"]]
    subprocess.run(command, check=True)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    else:
        raise RuntimeError("Redis did not come back")
    return f"Redis shut down without saving, down {down_for:g} s, started empty"


def postgresql_can_restart() -> bool:
    return bool(shutil.which("pg_ctlcluster")) and Path("/etc/postgresql").is_dir()


def postgresql_restart() -> str:
    """Restart the local PostgreSQL cluster with a fast shutdown (every session killed)."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "-m", "fast"],
        check=True,
        capture_output=True,
    )
    return "PostgreSQL restarted (fast shutdown: every session killed)"


def owner_child(supervisor: Supervisor, partition: int) -> str:
    """The name of the supervisor's child that holds `partition`'s lease."""
    holder = PartitionLease(partition).holder()
    if holder is None:
        raise RuntimeError(f"partition {partition} has no owner")
    pid = int(holder.split(":")[1])
    return next(name for name in supervisor.children if supervisor.pid(name) == pid)


def owners_sigkill(supervisor: Supervisor, partitions: list[int]) -> str:
    """SIGKILL the owners of `partitions` (a standby or another member takes over)."""
    for partition in partitions:
        supervisor.kill(owner_child(supervisor, partition))
    return f"SIGKILL of the owners of partitions {partitions} (taken over when their leases expire)"
