"""Run a function in many OS processes that start together (a barrier), like the seeds do.

Imports nothing of Django at module level: spawned children import this module before
they are configured.

The processes are fresh interpreters (spawned), configured like the test process: a forked
child would inherit this process's database and broker sockets. Each gets its own PostgreSQL
connection; exceptions come back as values, so a test can count them.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_barrier = None


@dataclass
class Raised:
    """An exception raised in a child process."""

    type_name: str
    message: str
    traceback: str


def _init(environment: dict[str, str], barrier: Any) -> None:
    global _barrier
    _barrier = barrier
    os.environ.update(environment)
    import django

    django.setup()


def _run(call: tuple[Callable[..., Any], tuple, dict]) -> Any:
    from django.db import connections

    fn, args, kwargs = call
    _barrier.wait(timeout=120)
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        return Raised(type(exc).__name__, str(exc), traceback.format_exc())
    finally:
        connections.close_all()


def run_in_processes(calls: list[tuple[Callable[..., Any], tuple, dict]]) -> list[Any]:
    """Run each (fn, args, kwargs) in its own process, all released at once. Results in order.

    `fn` must be importable (a module-level function)."""
    from workers.supervisor import child_environment

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(calls))
    with context.Pool(
        len(calls), initializer=_init, initargs=(child_environment(), barrier)
    ) as pool:
        # chunksize 1 and one process per call: every call waits at the barrier in its own
        # process, so they all start together.
        return pool.map(_run, calls, chunksize=1)


def raised(results: list[Any]) -> list[Raised]:
    """The exceptions among results (flattening lists of results)."""
    flat: list[Any] = []
    for result in results:
        flat.extend(result if isinstance(result, list) else [result])
    return [r for r in flat if isinstance(r, Raised)]


def run_threads(*targets: Callable[[], None], timeout: float = 30) -> None:
    """Run functions in threads (each with its own Django connection) and wait for all."""
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread did not finish"
