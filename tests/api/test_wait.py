"""`?wait` in-process: a committed write keeps its 202 even if the database goes away while
the view waits for its outcome (answering 503 would make a careful client send it again)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from rest_framework.test import APIClient

from tests.factories import QuotaFactory
from writes import api as writes_api
from writes.models import WriteRequest

pytestmark = pytest.mark.django_db(transaction=True)


def test_losing_the_database_while_waiting_still_answers_202(monkeypatch):
    owner = User.objects.create_user("waiter")
    quota = QuotaFactory(limit=5, owner=owner)
    client = APIClient()
    client.force_authenticate(owner)

    def database_gone(**kwargs):
        raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(writes_api, "write_request_wait", database_gone)
    response = client.post(
        f"/api/quotas/{quota.pk}/consume/?wait=2", {"request_id": "waited-1"}, format="json"
    )
    assert response.status_code == 202, response.content
    assert response.json()["request_id"] == "waited-1"
    assert WriteRequest.objects.filter(request_id="waited-1").exists()
