"""The Celery app, wired as cookiecutter-django does: settings under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.local")

app = Celery("racefree")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The partition queues and the router are declared in one place: workers/routing.py.
app.conf.task_routes = ("workers.routing.route_task",)
app.autodiscover_tasks()


@app.on_after_configure.connect
def _declare_queues(sender: Celery, **kwargs: object) -> None:
    from workers.routing import write_queues

    sender.conf.task_queues = write_queues()
