"""Who may do what: no write without a token (401), no write without the right (403).
In process: the access rules are the server's own code, no worker is involved."""

from __future__ import annotations

from tests.api.test_endpoints import assert_error, create_image, create_quota
from writes.models import WriteRequest


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


def test_every_write_without_a_token_is_401(local_api):
    image, quota = create_image(local_api), create_quota(local_api)
    for path, body in write_paths(image["id"], quota["id"]):
        assert_error(local_api.post(path, body, as_=None), 401, "credentials")
        bad = local_api.anonymous.post(
            local_api.url(path), json=body, headers={"Authorization": "Token x"}
        )
        assert_error(bad, 401, "token")
    assert not WriteRequest.objects.exists()


def test_every_write_without_the_right_is_403(local_api):
    """The reader holds no permission and owns nothing."""
    image, quota = create_image(local_api), create_quota(local_api)
    for path, body in write_paths(image["id"], quota["id"]):
        assert_error(local_api.post(path, body, as_="reader"), 403)
    assert not WriteRequest.objects.exists()


def test_objects_belong_to_their_owner_unless_a_permission_says_otherwise(local_api):
    image, quota = create_image(local_api, as_="writer"), create_quota(local_api, as_="writer")
    # The operator holds tag_image / consume_quota / view_*: allowed on others' objects.
    assert local_api.post(f"/api/images/{image['id']}/tags/", {"tags": ["a"]}, as_="operator").ok
    assert local_api.post(f"/api/quotas/{quota['id']}/consume/", {}, as_="operator").ok
    assert local_api.get(f"/api/quotas/{quota['id']}/", as_="operator").ok
    # Another writer is neither owner nor privileged.
    other = create_quota(local_api, as_="operator")
    assert_error(local_api.post(f"/api/quotas/{other['id']}/consume/", {}, as_="writer"), 403)
    assert_error(local_api.get(f"/api/quotas/{other['id']}/", as_="writer"), 403)
    assert_error(local_api.get(f"/api/images/{image['id']}/", as_="reader"), 403)


def test_reads_need_a_token_too(local_api):
    quota = create_quota(local_api)
    assert_error(local_api.get(f"/api/quotas/{quota['id']}/", as_=None), 401)
    assert_error(local_api.get("/api/requests/anything/", as_=None), 401)
