# Cookiecutter-django's wiring: the Celery app is loaded with Django, so that `shared_task`s
# and `celery.current_app` are this app in every process (web, workers, scripts).
from workers.celery import app as celery_app

__all__ = ("celery_app",)
