"""Write throttling, on a stack of its own (no workers: only acceptance is exercised)."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api, start_stack
from tests.api.test_endpoints import assert_error, create_quota

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def throttled_stack(django_db_setup, tmp_path_factory):
    stack = start_stack(tmp_path_factory, workers=False, API_WRITE_THROTTLE="3/minute")
    yield stack
    stack.supervisor.stop()


def test_writes_are_throttled_per_user(throttled_stack, transactional_db):
    api = Api(throttled_stack)
    quota = create_quota(api)
    statuses = [api.post(f"/api/quotas/{quota['id']}/consume/", {}).status_code for _ in range(4)]
    assert statuses == [202, 202, 202, 429]
    limited = api.post(f"/api/quotas/{quota['id']}/consume/", {})
    assert_error(limited, 429, "throttled")
    assert int(limited.headers["Retry-After"]) <= 60
    # Another user has a budget of their own.
    own = create_quota(api, as_="operator")
    assert api.post(f"/api/quotas/{own['id']}/consume/", {}, as_="operator").status_code == 202


def test_a_batch_counts_each_of_its_writes(throttled_stack, transactional_db):
    api = Api(throttled_stack)
    quota = create_quota(api)
    batch = f"/api/quotas/{quota['id']}/consume/batch/"
    # Budget 3: a batch of 3 would need 3 more after this single write.
    assert api.post(f"/api/quotas/{quota['id']}/consume/", {}).status_code == 202
    too_many = api.post(batch, {"items": [{}, {}, {}]})
    assert_error(too_many, 429, "throttled")
    # The refused batch was charged nothing beyond its own call: 1 write is left.
    assert api.post(batch, {"items": [{}]}).status_code == 202
    assert api.post(batch, {"items": [{}]}).status_code == 429
