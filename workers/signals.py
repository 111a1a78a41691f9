"""Worker-side database connection hygiene.

Celery's Django fixup is told (CELERY_DB_REUSE_MAX) not to close the connection around every
task; instead each task starts by dropping a connection that broke (PostgreSQL restarted, the
backend was terminated) or outlived CONN_MAX_AGE, so the retry of a failed task reconnects.
"""

from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections


@task_prerun.connect
def _before_task(**kwargs: object) -> None:
    close_old_connections()


@task_postrun.connect
def _after_task(**kwargs: object) -> None:
    close_old_connections()
