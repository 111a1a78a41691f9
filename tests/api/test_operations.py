"""What an operator watches, against the live stack: writes_status, /metrics, the admin's
partition page and its retry action; and neither page nor metrics fails when Redis does."""

from __future__ import annotations

import json
import time
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client, override_settings
from rest_framework.authtoken.models import Token

from core import redis_client as redis_client_module
from quotas.services import KIND_CONSUME
from tests.api.test_endpoints import create_quota
from tests.factories import QuotaFactory
from writes.models import WriteRequest
from writes.services import write_request_accept


def _status() -> dict:
    out = StringIO()
    call_command("writes_status", "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.mark.e2e
def test_every_partition_shows_its_owner_and_what_it_did(api):
    quota = create_quota(api, limit=100)
    for _ in range(5):
        assert api.post(f"/api/quotas/{quota['id']}/consume/?wait=5", {}).status_code == 200
    deadline = time.monotonic() + 10
    while True:  # statuses are published every second
        status = _status()
        rows = status["partitions"]
        # Right after the stack starts, a partition can still be changing hands: its row
        # then names the last process that drained it, which no longer holds its lease.
        owned = all(row["holds_lease"] and row["state"] in ("idle", "running") for row in rows)
        if owned and any(row["finished_last_minute"] for row in rows):
            break
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert status["unavailable"] == {}
    assert len({row["owner"] for row in rows}) == len(rows)  # one process per partition here
    assert sum(row["finished_last_minute"] for row in rows) >= 5
    assert all(row["pending"] == 0 for row in rows)


@pytest.mark.e2e
def test_metrics_need_credentials_and_show_the_log(api):
    assert api.get("/metrics", as_=None).status_code == 401
    assert api.get("/metrics", as_="writer").status_code == 401  # not an operator
    quota = create_quota(api, limit=10)
    for _ in range(3):
        api.post(f"/api/quotas/{quota['id']}/consume/?wait=5", {})
    deadline = time.monotonic() + 10
    while True:
        response = api.get("/metrics", as_="operator")
        assert response.status_code == 200
        text = response.text
        if text.count("racefree_partition_owner_info{") == settings.WRITE_PARTITIONS:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.3)
    assert 'racefree_writes_pending{partition="0"} 0.0' in text
    assert 'racefree_writes_final_total{kind="quotas.consume",state="applied"} 3.0' in text
    assert "racefree_drain_batch_size_count" in text
    assert 'racefree_metrics_source_up{source="redis"} 1.0' in text


@pytest.fixture
def staff_client(db) -> Client:
    user = User.objects.create_superuser("ops", "ops@example.com", "pw")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def test_the_partition_page_is_for_staff_and_reloads_itself(staff_client, client):
    assert client.get("/admin/writes/writerequest/partitions/").status_code == 302  # login
    page = staff_client.get("/admin/writes/writerequest/partitions/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'http-equiv="refresh"' in html
    assert html.count('<td class="owner">') == settings.WRITE_PARTITIONS


def test_the_admin_action_puts_failed_writes_back(staff_client):
    quota = QuotaFactory()
    failed = write_request_accept(
        kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1}, request_id="adm-1"
    ).request
    WriteRequest.objects.filter(pk=failed.pk).update(
        state="failed", result={"reason": "error"}, finished_at="2026-01-01T00:00Z"
    )
    response = staff_client.post(
        "/admin/writes/writerequest/",
        {"action": "retry_failed", "_selected_action": [failed.pk]},
        follow=True,
    )
    assert "1 failed write(s) pending again" in response.content.decode()
    assert WriteRequest.objects.get(request_id="adm-1").state == "pending"


@override_settings(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
def test_metrics_and_the_page_say_what_they_could_not_read(staff_client):
    redis_client_module.redis_client.cache_clear()
    try:
        operator = User.objects.create_user("metrics-op")
        operator.user_permissions.add(Permission.objects.get(codename="view_writerequest"))
        token = Token.objects.create(user=operator).key
        metrics = Client(HTTP_HOST="localhost").get("/metrics", HTTP_AUTHORIZATION=f"Token {token}")
        assert metrics.status_code == 200
        assert 'racefree_metrics_source_up{source="redis"} 0.0' in metrics.content.decode()
        assert 'racefree_writes_pending{partition="0"}' in metrics.content.decode()
        page = staff_client.get("/admin/writes/writerequest/partitions/")
        assert page.status_code == 200 and "redis could not be read" in page.content.decode()
        assert _status()["unavailable"].keys() == {"redis"}
    finally:
        redis_client_module.redis_client.cache_clear()
