"""Run a manage.py command in a fresh process, as an operator would, with extra environment."""

from __future__ import annotations

import os
import subprocess

from workers.supervisor import manage_py


def run_manage_py(*args: str, **env: str) -> subprocess.CompletedProcess:
    """The finished process (local settings unless `env` says otherwise); output as text."""
    return subprocess.run(
        manage_py(*args),
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings.local", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
