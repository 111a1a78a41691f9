"""Settings shared by every environment; every value comes from the environment (12-factor).

`local`, `test` and `production` only change defaults and hardening on top of this module.
"""

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from core.durations import duration_parse

BASE_DIR = Path(__file__).resolve().parent.parent.parent


class _Env(environ.Env):
    """environ.Env whose parse errors name the variable (`WRITE_PARTITIONS='abc'`)."""

    def get_value(
        self,
        var: str,
        cast: Any = None,
        default: Any = environ.Env.NOTSET,
        parse_default: bool = False,
    ) -> Any:
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{var}={self.ENVIRON.get(var)!r}: {exc}") from exc


env = _Env()

SECRET_KEY = env.str("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "writes",
    "tagging",
    "quotas",
    "workers",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's and the API docs' static files from gunicorn (no separate server).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- PostgreSQL -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/racefree"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        # No statement may hold a row lock forever: a stuck writer fails and is retried.
        # Prepared statements (only the write path's hot SQL, core/pg_prepared.py) are
        # planned once, not at every execution.
        options=f"-c statement_timeout={env.int('DB_STATEMENT_TIMEOUT_MS', default=30000)} "
        "-c plan_cache_mode=force_generic_plan",
        # Names each process's sessions in pg_stat_activity (web, writes.3, ...).
        application_name=env.str("DB_APPLICATION_NAME", default="racefree"),
        # An unreachable host must not hang a worker's heartbeat thread for minutes.
        connect_timeout=env.int("DB_CONNECT_TIMEOUT", default=5),
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache (throttling, partition wake-up flags) and partition leases --------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/1")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="racefree"),
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}

# --- Write partitions (see workers/routing.py and writes/) ------------------------------------
# Number of partition queues writes.0 … writes.N-1. Change it only with the request log drained:
# a pending request keeps the partition it was accepted under.
WRITE_PARTITIONS = env.int("WRITE_PARTITIONS", default=8)
# "coalesced": a partition's worker drains all pending requests per wake-up (few messages);
# "message": one Celery message per write (the classic shape, kept for comparison).
WRITE_DISPATCH = env.str("WRITE_DISPATCH", default="coalesced")
# "partitioned": route by object key; "shared": everything on one queue (routing bypassed,
# only for proving the database guards hold on their own).
WRITE_ROUTING = env.str("WRITE_ROUTING", default="partitioned")
DRAIN_BATCH_SIZE = env.int("DRAIN_BATCH_SIZE", default=2000)
DRAIN_TIME_BUDGET = env.float("DRAIN_TIME_BUDGET", default=20.0)
# A process working several partitions runs one drain at a time: a drain that has run this
# long makes way (and continues later) when another partition's drain is queued behind it.
DRAIN_SLICE = env.float("DRAIN_SLICE", default=0.5)
# A drain that finds nothing waits this long for the next accepted write before it stops:
# under load one drain task then serves a stream of writes (a Celery message costs more than
# a write). 0 stops at once.
DRAIN_LINGER = env.float("DRAIN_LINGER", default=0.02)
# A write that keeps failing transiently (a statement timeout, a deadlock; not a lost
# connection) is retried with back-off (2, 4, 8... seconds, at most DRAIN_RETRY_MAX_DELAY)
# and failed at its DRAIN_MAX_ATTEMPTS-th failure, so that it cannot hold up its partition.
DRAIN_MAX_ATTEMPTS = env.int("DRAIN_MAX_ATTEMPTS", default=5)
DRAIN_RETRY_MAX_DELAY = env.float("DRAIN_RETRY_MAX_DELAY", default=60.0)
# Under load (writes notified while a group was being applied) a drain waits this long
# before its next scan, so that groups grow: the cost of a group is nearly all fixed.
DRAIN_GATHER = env.float("DRAIN_GATHER", default=0.005)
# Partition ownership on Redis brokers: a lease with a TTL renewed by a heartbeat.
PARTITION_LEASE_TTL = env.float("PARTITION_LEASE_TTL", default=5.0)
PARTITION_STANDBY_POLL = env.float("PARTITION_STANDBY_POLL", default=0.25)
# The owner of a partition republishes work still pending after RECONCILE_AFTER seconds.
RECONCILE_INTERVAL = env.float("RECONCILE_INTERVAL", default=2.0)
RECONCILE_AFTER = env.float("RECONCILE_AFTER", default=5.0)
# ...and, when its queue never empties, after this long regardless.
RECONCILE_FORCE_AFTER = env.float("RECONCILE_FORCE_AFTER", default=60.0)

# Final request rows older than this are deleted by the partition owners, a bounded batch
# at a time (REQUEST_LOG_PRUNE_BATCH rows, at most 10 batches every PRUNE_INTERVAL seconds).
REQUEST_LOG_RETENTION = env.str("REQUEST_LOG_RETENTION", default="7d")
REQUEST_LOG_PRUNE_BATCH = env.int("REQUEST_LOG_PRUNE_BATCH", default=1000)
PRUNE_INTERVAL = env.float("PRUNE_INTERVAL", default=60.0)

# The web server (manage.py run_web): processes, threads per process, access log (it costs
# about a fifth of a request's CPU in the server; a proxy in front usually keeps one).
WEB_WORKERS = env.int("WEB_WORKERS", default=2)
WEB_THREADS = env.int("WEB_THREADS", default=8)
WEB_ACCESS_LOG = env.bool("WEB_ACCESS_LOG", default=False)


# A typo in one of these must stop the process at start, not quietly pick another behaviour.
def _refuse_bad_write_settings() -> None:
    choices = {
        "WRITE_DISPATCH": (WRITE_DISPATCH, ("coalesced", "message")),
        "WRITE_ROUTING": (WRITE_ROUTING, ("partitioned", "shared")),
    }
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise ImproperlyConfigured(f"{name}={value!r}: must be one of {', '.join(allowed)}")
    try:
        duration_parse(REQUEST_LOG_RETENTION)
    except ValueError as exc:
        raise ImproperlyConfigured(f"REQUEST_LOG_RETENTION: {exc}") from None
    if WRITE_ROUTING == "shared" and WRITE_DISPATCH != "message":
        # Drains are woken by their partition's owner; the shared queue has none.
        raise ImproperlyConfigured("WRITE_ROUTING='shared' needs WRITE_DISPATCH='message'")
    for name, value in {"DRAIN_LINGER": DRAIN_LINGER, "DRAIN_GATHER": DRAIN_GATHER}.items():
        if value < 0:
            raise ImproperlyConfigured(f"{name}={value}: must not be negative")
    positive = {
        "WRITE_PARTITIONS": WRITE_PARTITIONS,
        "DRAIN_BATCH_SIZE": DRAIN_BATCH_SIZE,
        "DRAIN_TIME_BUDGET": DRAIN_TIME_BUDGET,
        "DRAIN_SLICE": DRAIN_SLICE,
        "PARTITION_LEASE_TTL": PARTITION_LEASE_TTL,
        "PARTITION_STANDBY_POLL": PARTITION_STANDBY_POLL,
        "RECONCILE_INTERVAL": RECONCILE_INTERVAL,
        "RECONCILE_AFTER": RECONCILE_AFTER,
        "RECONCILE_FORCE_AFTER": RECONCILE_FORCE_AFTER,
        "DRAIN_MAX_ATTEMPTS": DRAIN_MAX_ATTEMPTS,
        "REQUEST_LOG_PRUNE_BATCH": REQUEST_LOG_PRUNE_BATCH,
        "PRUNE_INTERVAL": PRUNE_INTERVAL,
        "DRAIN_RETRY_MAX_DELAY": DRAIN_RETRY_MAX_DELAY,
        "WEB_WORKERS": WEB_WORKERS,
        "WEB_THREADS": WEB_THREADS,
    }
    for name, value in positive.items():
        if value <= 0:
            raise ImproperlyConfigured(f"{name}={value}: must be greater than 0")


_refuse_bad_write_settings()

# --- Celery (read by workers/celery.py with namespace="CELERY") -------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Outcomes live in PostgreSQL (the request log); Flower reads results from task events.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=8)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=60)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=90)
# No task-sent events: each would cost the producer a second broker round trip per write.
CELERY_TASK_SEND_SENT_EVENT = False
# Task events feed Flower. They cost a worker about a quarter of its time at one message per
# write (a Redis PUBLISH per event; see docs/BENCHMARKS.md): off only if nothing watches.
CELERY_WORKER_SEND_TASK_EVENTS = env.bool("CELERY_WORKER_SEND_TASK_EVENTS", default=True)
CELERY_TASK_TRACK_STARTED = True
# Redelivery of unacked messages after a crash: longer than the hard time limit plus the
# longest retry countdown, so a running task is never handed to a second worker. Lost
# messages are not waited for: the request log's reconciler republishes sooner.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=300),
}
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Celery's Django fixup closes the DB connection around every task unless this is set; that
# costs a new PostgreSQL session per task (3-4x throughput). workers/signals.py instead drops
# only connections that are broken or too old.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1_000_000)

# --- Flower, and the request log's own metrics (GET /metrics) ----------------------------------
FLOWER_BASIC_AUTH = env.str("FLOWER_BASIC_AUTH", default="")
# Tasks Flower keeps in memory (its own default is 10,000): the request log, not Flower,
# is the record of every write, so Flower only needs the recent ones.
FLOWER_MAX_TASKS = env.int("FLOWER_MAX_TASKS", default=2000)
# "user:password" for Prometheus to scrape /metrics (an operator's API token works too).
METRICS_BASIC_AUTH = env.str("METRICS_BASIC_AUTH", default="")

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's TokenAuthentication without a database read per request (core/token_auth.py).
        "core.token_auth.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.JsonFirstNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api_errors.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "writes": env.str("API_WRITE_THROTTLE", default="100000/minute"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "racefree API",
    "DESCRIPTION": (
        "Enqueue race-free tag additions and quota consumptions; follow each request.\n\n"
        "The schema declares every limit the server enforces (a tag name's Unicode rules, "
        "which no compact pattern holds, in words in its description). Request bodies are "
        "JSON with "
        'strict types: no value is coerced ("5" is not 5, 0 is not "0", true is not 1). '
        "Body fields the schema does not name are ignored, not refused. Every error is JSON: "
        '`{"detail", "code"}` (and the field errors for invalid input).'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}
# Longest a process serves a token from memory without reading it again (a change to tokens,
# users or permissions empties every process's cache at once anyway: core/token_auth.py).
AUTH_CACHE_SECONDS = env.float("AUTH_CACHE_SECONDS", default=300.0)
# Largest accepted request body; larger ones get 413 before parsing.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
# Models whose objects a quota may guard (POST /api/quotas/ {"object": "app_label.model:pk"}).
QUOTA_GUARDED_MODELS = env.list("QUOTA_GUARDED_MODELS", default=["tagging.image"])

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}
