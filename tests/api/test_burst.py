"""A concurrent burst through the HTTP API, applied by the live workers: every invariant."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from stress.audit import burst_audit
from stress.burst import ApiTarget, run_burst, wait_until_settled
from stress.workload import workload_create

pytestmark = pytest.mark.e2e


def test_burst_through_the_api_keeps_every_invariant(api, live_stack):
    operator = Token.objects.get(user__username="operator-user")
    workload = workload_create(images=10, quotas=10, quota_limit=40, hot=0.5)

    sent = run_burst(
        workload=workload,
        requests=1200,
        producers=4,
        api=ApiTarget(live_stack.base_url, operator.key),
    )

    assert {s.status for s in sent} == {202}, {s.error for s in sent if s.error}
    assert wait_until_settled([s.request_id for s in sent], timeout=120) == 0
    report = burst_audit(sent)
    print(f"\nAPI burst: {report.as_dict()}")
    assert report.refused > 0
    assert report.ok, report.examples
