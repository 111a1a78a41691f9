"""Flower, as the demo and compose start it: it sees the partition workers, behind auth."""

from __future__ import annotations

import time

import pytest
import requests
from django.conf import settings

from tests.api.conftest import FLOWER_AUTH
from workers.supervisor import worker_queue

pytestmark = pytest.mark.e2e


def test_flower_lists_every_partition_worker(live_stack):
    wanted = {f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)}
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not wanted <= seen:
        response = requests.get(
            f"{live_stack.flower_url}/api/workers",
            params={"refresh": "1"},
            auth=FLOWER_AUTH,
            timeout=30,
        )
        assert response.status_code == 200
        seen = {worker_queue(name) for name in response.json()}
        time.sleep(0.5)
    assert wanted <= seen


def test_flower_and_its_metrics_need_credentials(live_stack):
    for path in ("/api/workers", "/metrics", "/"):
        assert requests.get(f"{live_stack.flower_url}{path}", timeout=10).status_code == 401
        wrong = requests.get(f"{live_stack.flower_url}{path}", auth=("x", "y"), timeout=10)
        assert wrong.status_code == 401
    metrics = requests.get(f"{live_stack.flower_url}/metrics", auth=FLOWER_AUTH, timeout=10)
    assert metrics.status_code == 200 and "flower_" in metrics.text
