"""Token authentication served from memory, forgotten the moment PostgreSQL says a token,
user or permission changed (triggers + NOTIFY). In-process, real PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from core.pg_listener import listener
from core.token_auth import AUTH_CHANNEL, token_cache
from tests.factories import QuotaFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _listening() -> None:
    token_cache.get("warm-up")  # subscribes
    deadline = time.monotonic() + 10
    while not listener.listening(AUTH_CHANNEL):
        assert time.monotonic() < deadline, "the listener never connected"
        time.sleep(0.05)


_seen: set[str] = set()


def _settled() -> None:
    """Wait until every notification committed so far has reached the listener (NOTIFYs are
    delivered in commit order; under load the ones of the setup can arrive after the first
    request and clear the cache it filled)."""
    if not _seen:
        listener.subscribe(AUTH_CHANNEL, _seen.add)
    marker = f"settled-{uuid.uuid4()}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [AUTH_CHANNEL, marker])
    deadline = time.monotonic() + 10
    while marker not in _seen:
        assert time.monotonic() < deadline, "the listener never saw the marker"
        time.sleep(0.02)


def _client(user: User) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def _token_queries(client: APIClient, path: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        status = client.get(path).status_code
    return status, sum("authtoken_token" in q["sql"] for q in queries.captured_queries)


def test_a_known_token_costs_no_query():
    _listening()
    owner = User.objects.create_user("cached-owner")
    quota = QuotaFactory(owner=owner)
    client = _client(owner)
    _settled()
    assert _token_queries(client, f"/api/quotas/{quota.pk}/") == (200, 1)
    assert _token_queries(client, f"/api/quotas/{quota.pk}/") == (200, 0)


def _eventually(check, seconds: float = 3.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def test_a_deleted_token_stops_working_at_once():
    _listening()
    owner = User.objects.create_user("deleted-token")
    quota = QuotaFactory(owner=owner)
    client = _client(owner)
    assert client.get(f"/api/quotas/{quota.pk}/").status_code == 200  # cached now
    Token.objects.filter(user=owner).delete()
    assert _eventually(lambda: client.get(f"/api/quotas/{quota.pk}/").status_code == 401)


def test_a_deactivated_user_and_a_withdrawn_permission_stop_working_at_once():
    _listening()
    operator = User.objects.create_user("operator-then-not")
    operator.user_permissions.add(Permission.objects.get(codename="view_quota"))
    quota = QuotaFactory(owner=User.objects.create_user("someone-else"))
    client = _client(operator)
    assert client.get(f"/api/quotas/{quota.pk}/").status_code == 200
    operator.user_permissions.clear()  # a raw M2M delete: no model signal involved
    assert _eventually(lambda: client.get(f"/api/quotas/{quota.pk}/").status_code == 403)
    User.objects.filter(pk=operator.pk).update(is_active=False)  # no signal either
    assert _eventually(lambda: client.get(f"/api/quotas/{quota.pk}/").status_code == 401)


def test_nothing_is_served_from_memory_while_notifications_cannot_be_received():
    _listening()
    owner = User.objects.create_user("unlistened")
    quota = QuotaFactory(owner=owner)
    client = _client(owner)
    client.get(f"/api/quotas/{quota.pk}/")
    listener.stop()
    try:
        assert _token_queries(client, f"/api/quotas/{quota.pk}/")[1] == 1
    finally:
        _listening()
