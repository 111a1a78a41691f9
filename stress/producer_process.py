"""Entry points of a spawned producer process. Imports nothing of Django at module level:
the child must be configured (environment, django.setup) before any model is imported."""

from __future__ import annotations

import importlib
import os
from dataclasses import asdict, is_dataclass
from typing import Any

_progress = None
_barrier = None


def init(environment: dict[str, str], progress: Any, barrier: Any = None) -> None:
    """Pool initializer: configure Django like the parent process."""
    global _progress, _barrier
    _progress, _barrier = progress, barrier
    os.environ.update(environment)
    import django

    django.setup()


def run(job: dict[str, Any]) -> Any:
    """Run one producer's share: `job["target"]` ("module:function") called with the rest of
    the job and the shared progress counter; all producers start together (a barrier)."""
    job = dict(job)
    module, _, name = job.pop("target").partition(":")
    target = getattr(importlib.import_module(module), name)
    if _barrier is not None:
        _barrier.wait(timeout=120)
    result = target(**job, progress=_progress)
    if isinstance(result, list):
        return [asdict(item) if is_dataclass(item) else item for item in result]
    return result
