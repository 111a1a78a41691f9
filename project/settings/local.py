"""Development and demo settings: a local PostgreSQL and Redis, a throwaway secret key."""

from .base import *  # noqa: F403
from .base import INSTALLED_APPS, env

# The load tools (the demo, `manage.py stress`, the seeds' strategies): never in production.
INSTALLED_APPS = [*INSTALLED_APPS, "stress"]

SECRET_KEY = env.str("SECRET_KEY", default="insecure-local-development-key-do-not-deploy")

# No collectstatic needed for development: serve from the apps' static folders.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
