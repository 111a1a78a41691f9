"""Test settings: real PostgreSQL and Redis, isolated Redis databases, fast password hashing."""

import os

from .base import *  # noqa: F403
from .base import INSTALLED_APPS, env

# The load tools (the demo, `manage.py stress`, the seeds' strategies): never in production.
INSTALLED_APPS = [*INSTALLED_APPS, "stress"]

SECRET_KEY = "insecure-test-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The tests own Redis databases 14 (broker) and 15 (cache, leases): they flush them freely.
# Under pytest-xdist each worker owns its own pair (as it owns its own test database), so
# that parallel tests never flush each other's queues or leases.
_XDIST_REDIS_DBS = {"gw0": (14, 15), "gw1": (8, 9), "gw2": (6, 7), "gw3": (4, 5)}
_broker_db, _cache_db = _XDIST_REDIS_DBS[os.environ.get("PYTEST_XDIST_WORKER", "gw0")]
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"redis://127.0.0.1:6379/{_broker_db}")
REDIS_URL = env.str("REDIS_URL", default=f"redis://127.0.0.1:6379/{_cache_db}")
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
PARTITION_LEASE_TTL = env.float("PARTITION_LEASE_TTL", default=2.0)
RECONCILE_INTERVAL = env.float("RECONCILE_INTERVAL", default=0.5)
RECONCILE_AFTER = env.float("RECONCILE_AFTER", default=2.0)
RECONCILE_FORCE_AFTER = env.float("RECONCILE_FORCE_AFTER", default=10.0)
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
