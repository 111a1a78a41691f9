"""Settings of the benchmark's web and worker processes: the demo's settings plus the baseline
views (benchmarks/web/baselines.py), which never enter the production URLconf."""

from project.settings.local import *  # noqa: F403

ROOT_URLCONF = "benchmarks.web.urls"
# The `.delay()` baseline's task, for the worker that consumes it.
CELERY_IMPORTS = ["benchmarks.web.baselines"]
