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
# TEST_REDIS_SLOT shifts the pairs, for two checkouts tested at once on one machine
# (with different DATABASE_URL names as well).
_REDIS_DB_PAIRS = [(14, 15), (8, 9), (6, 7), (4, 5), (2, 3), (10, 11), (12, 13)]
_slot = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
_broker_db, _cache_db = _REDIS_DB_PAIRS[_slot + env.int("TEST_REDIS_SLOT", default=0)]
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=f"redis://127.0.0.1:6379/{_broker_db}")
REDIS_URL = env.str("REDIS_URL", default=f"redis://127.0.0.1:6379/{_cache_db}")
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
# Four partitions, not eight: a live stack or a fleet runs a worker process per partition, and
# each costs ~1 s of CPU to start and ~1.5% of a core idle (measured): half the suite's
# process start-ups on 2 cores. Eight (and 12, 24) remain where a test asks for them.
WRITE_PARTITIONS = env.int("WRITE_PARTITIONS", default=4)
PARTITION_LEASE_TTL = env.float("PARTITION_LEASE_TTL", default=2.0)
RECONCILE_INTERVAL = env.float("RECONCILE_INTERVAL", default=0.5)
RECONCILE_AFTER = env.float("RECONCILE_AFTER", default=2.0)
RECONCILE_FORCE_AFTER = env.float("RECONCILE_FORCE_AFTER", default=10.0)
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
