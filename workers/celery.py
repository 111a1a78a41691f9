"""The Celery app, wired as cookiecutter-django does: settings under the CELERY_ namespace."""

from celery import Celery

# No default DJANGO_SETTINGS_MODULE here: this module is loaded with the `project` package
# (project/__init__.py), and manage.py (local) and wsgi.py (production) choose their own.
app = Celery("racefree")
app.config_from_object("django.conf:settings", namespace="CELERY")
# The partition queues and the router are declared in one place: workers/routing.py.
app.conf.task_routes = ("workers.routing.route_task",)
app.autodiscover_tasks()


@app.on_after_configure.connect
def _declare_queues(sender: Celery, **kwargs: object) -> None:
    from workers.routing import write_queues

    sender.conf.task_queues = write_queues()
