"""Celery's soft and hard task time limits, for the solo pool.

Celery enforces CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT only in the prefork
pool; the solo pool runs a task inline in the worker's main thread and ignores them. Here:
- soft: a SIGALRM timer armed around every task raises SoftTimeLimitExceeded inside it (the
  transaction rolls back; its writes stay pending and are applied again later);
- hard: the partition owner's thread (workers/ownership.py) sees a task running past the
  hard limit, gives the partition up and ends the process, so a standby takes over.
"""

from __future__ import annotations

import signal
import time

from billiard.exceptions import SoftTimeLimitExceeded
from celery.signals import task_postrun, task_prerun
from django.conf import settings

_started: float | None = None


def install() -> None:
    """Arm the soft limit around every task of this (solo) worker process."""
    signal.signal(signal.SIGALRM, _soft_limit_reached)
    task_prerun.connect(_task_started, weak=False)
    task_postrun.connect(_task_ended, weak=False)


def task_running_for() -> float | None:
    """Seconds the current task has been running, or None between tasks."""
    started = _started
    return None if started is None else time.monotonic() - started


def _task_started(**kwargs: object) -> None:
    global _started
    _started = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, settings.CELERY_TASK_SOFT_TIME_LIMIT)


def _task_ended(**kwargs: object) -> None:
    global _started
    signal.setitimer(signal.ITIMER_REAL, 0)
    _started = None


def _soft_limit_reached(signum: int, frame: object) -> None:
    raise SoftTimeLimitExceeded(f"soft time limit ({settings.CELERY_TASK_SOFT_TIME_LIMIT}s)")
