"""Who may do what: no write without a token (401), no write without the right (403)."""

from __future__ import annotations

import pytest

from tests.api.test_endpoints import assert_error, create_image, create_quota
from writes.models import WriteRequest

pytestmark = pytest.mark.e2e


def write_paths(image_id, quota_id):
    return [
        ("/api/images/", {"title": "x"}),
        (f"/api/images/{image_id}/tags/", {"tags": ["cat"]}),
        (f"/api/images/{image_id}/tags/remove/", {"tags": ["cat"]}),
        ("/api/quotas/", {"limit": 3}),
        (f"/api/quotas/{quota_id}/consume/", {"amount": 1}),
        (f"/api/quotas/{quota_id}/consume/batch/", {"items": [{"amount": 1}]}),
        (f"/api/quotas/{quota_id}/refill/", {"amount": 1}),
    ]


def test_every_write_without_a_token_is_401(api):
    image, quota = create_image(api), create_quota(api)
    for path, body in write_paths(image["id"], quota["id"]):
        assert_error(api.post(path, body, as_=None), 401, "credentials")
        bad = api.anonymous.post(api.url(path), json=body, headers={"Authorization": "Token x"})
        assert_error(bad, 401, "token")
    assert not WriteRequest.objects.exists()


def test_every_write_without_the_right_is_403(api):
    """The reader holds no permission and owns nothing."""
    image, quota = create_image(api), create_quota(api)
    for path, body in write_paths(image["id"], quota["id"]):
        assert_error(api.post(path, body, as_="reader"), 403)
    assert not WriteRequest.objects.exists()


def test_objects_belong_to_their_owner_unless_a_permission_says_otherwise(api):
    image, quota = create_image(api, as_="writer"), create_quota(api, as_="writer")
    # The operator holds tag_image / consume_quota / view_*: allowed on others' objects.
    assert api.post(f"/api/images/{image['id']}/tags/", {"tags": ["a"]}, as_="operator").ok
    assert api.post(f"/api/quotas/{quota['id']}/consume/", {}, as_="operator").ok
    assert api.get(f"/api/quotas/{quota['id']}/", as_="operator").ok
    # Another writer is neither owner nor privileged.
    other = create_quota(api, as_="operator")
    assert_error(api.post(f"/api/quotas/{other['id']}/consume/", {}, as_="writer"), 403)
    assert_error(api.get(f"/api/quotas/{other['id']}/", as_="writer"), 403)
    assert_error(api.get(f"/api/images/{image['id']}/", as_="reader"), 403)


def test_reads_need_a_token_too(api):
    quota = create_quota(api)
    assert_error(api.get(f"/api/quotas/{quota['id']}/", as_=None), 401)
    assert_error(api.get("/api/requests/anything/", as_=None), 401)
