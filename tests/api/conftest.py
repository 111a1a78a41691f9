"""A live stack for API tests: gunicorn, Flower and one worker per partition, real processes
on the test database and test broker, shared by a module's tests."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import pytest
import redis
import requests
from django.conf import settings

from core.management.commands.create_api_user import ROLES
from workers.supervisor import (
    Supervisor,
    child_environment,
    flower_spec,
    partition_worker_specs,
    wait_for_http,
    wait_for_workers,
    web_spec,
)

FLOWER_AUTH = ("flower-admin", "flower-secret")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveStack:
    base_url: str
    flower_url: str
    supervisor: Supervisor
    sessions: dict[str, requests.Session] = field(default_factory=dict)


def start_stack(tmp_path_factory, *, workers: bool = True, **env: object) -> LiveStack:
    for url in (settings.CELERY_BROKER_URL, settings.REDIS_URL):
        if url.startswith("redis"):
            redis.Redis.from_url(url).flushdb()
    web_port, flower_port = free_port(), free_port()
    specs = [web_spec(web_port, workers=2, threads=8)]
    if workers:
        specs += [
            flower_spec(flower_port),
            *partition_worker_specs(range(settings.WRITE_PARTITIONS)),
        ]
    supervisor = Supervisor(
        specs,
        log_dir=tmp_path_factory.mktemp("stack"),
        env=child_environment(
            FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH), ALLOWED_HOSTS="127.0.0.1,localhost", **env
        ),
    )
    supervisor.start()
    stack = LiveStack(f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{flower_port}", supervisor)
    try:
        wait_for_http(f"{stack.base_url}/healthz")
        if workers:
            wait_for_http(f"{stack.flower_url}/healthcheck")
            wait_for_workers({f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)})
    except Exception:
        supervisor.stop()
        raise
    return stack


@pytest.fixture(scope="module")
def live_stack(django_db_setup, tmp_path_factory):
    stack = start_stack(tmp_path_factory)
    yield stack
    stack.supervisor.stop()


class Api:
    """HTTP clients of the live API, one per role, created for each test."""

    def __init__(self, stack: LiveStack) -> None:
        self.base_url = stack.base_url
        self.anonymous = requests.Session()
        self.users: dict[str, requests.Session] = {}
        for role, token in _role_tokens().items():
            session = requests.Session()
            session.headers["Authorization"] = f"Token {token}"
            self.users[role] = session

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def post(self, path: str, body: object = None, *, as_: str = "writer", **kwargs):
        session = self.anonymous if as_ is None else self.users[as_]
        return session.post(self.url(path), json=body, timeout=30, **kwargs)

    def get(self, path: str, *, as_: str = "writer", **kwargs):
        session = self.anonymous if as_ is None else self.users[as_]
        return session.get(self.url(path), timeout=30, **kwargs)


def wait_until_idle(timeout: float = 30) -> None:
    """No write pending: the workers hold no lock the end-of-test TRUNCATE could wait on."""
    import time

    from writes.models import WriteRequest

    deadline = time.monotonic() + timeout
    while WriteRequest.objects.filter(state="pending").exists():
        assert time.monotonic() < deadline, "writes still pending at the end of the test"
        time.sleep(0.05)


@pytest.fixture
def api(live_stack, transactional_db):
    yield Api(live_stack)
    wait_until_idle()


class LocalResponse:
    """The parts of a `requests` response the tests read, from Django's test client."""

    def __init__(self, response) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self.content = response.content
        self.ok = self.status_code < 400

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self):
        import json

        return json.loads(self.content)


class LocalSession:
    """A `requests.Session` look-alike that calls the API in this process (django.test.Client:
    the same middleware, URLconf, authentication and database, no server, no workers)."""

    def __init__(self, base_url: str) -> None:
        from django.test import Client

        self.base_url = base_url
        self.client = Client()
        self.headers: dict[str, str] = {}

    def _call(self, method: str, url: str, *, json=None, data=None, headers=None, params=None):
        import json as json_module

        path = url.removeprefix(self.base_url)
        headers = {**self.headers, **(headers or {})}
        content_type = headers.pop("Content-Type", "application/json")
        if json is not None:
            data = json_module.dumps(json)
        kwargs = {"headers": headers}
        if method == "get":
            response = self.client.get(path, params or {}, **kwargs)
        else:
            response = getattr(self.client, method)(
                path, data if data is not None else "", content_type=content_type, **kwargs
            )
        return LocalResponse(response)

    def post(self, url: str, **kwargs):
        kwargs.pop("timeout", None)
        return self._call("post", url, **kwargs)

    def get(self, url: str, **kwargs):
        kwargs.pop("timeout", None)
        return self._call("get", url, **kwargs)


class LocalApi(Api):
    """The `Api` of the contract tests, in process: validation, errors, access rules and
    the accepting INSERT are the server's own code; nothing is applied (no workers)."""

    def __init__(self) -> None:
        self.base_url = "http://testserver"
        self.anonymous = LocalSession(self.base_url)
        self.users = {}
        for role, token in _role_tokens().items():
            session = LocalSession(self.base_url)
            session.headers["Authorization"] = f"Token {token}"
            self.users[role] = session


def _role_tokens() -> dict[str, str]:
    from io import StringIO

    from django.core.management import call_command

    tokens = {}
    for role in ROLES:
        out = StringIO()
        call_command("create_api_user", f"{role}-user", role=role, stdout=out)
        tokens[role] = out.getvalue().strip()
    return tokens


@pytest.fixture
def local_api(transactional_db, cache_redis):
    """The API called in this process (see LocalApi): the fast lane's contract tests."""
    return LocalApi()
