"""Every endpoint and every error: the contract (validation, errors, what is accepted) in
process (`local_api`), what the workers apply against the live stack (`api`: the API server
and real partition workers)."""

from __future__ import annotations

import time

import pytest

from quotas.models import QuotaLedgerEntry
from writes.models import WriteRequest


def create_image(api, title="sunset", as_="writer"):
    response = api.post("/api/images/", {"title": title}, as_=as_)
    assert response.status_code == 201, response.text
    return response.json()


def create_quota(api, limit=10, as_="writer", **extra):
    response = api.post("/api/quotas/", {"limit": limit, **extra}, as_=as_)
    assert response.status_code == 201, response.text
    return response.json()


def assert_error(response, status, text=None):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    if text is not None:
        assert text in str(body), body
    return body


# --- images and tags --------------------------------------------------------------------------


def test_image_create_and_get(local_api):
    image = create_image(local_api, "  sunset ")
    assert image == {"id": image["id"], "title": "sunset", "tags": []}
    assert local_api.get(f"/api/images/{image['id']}/").json() == image


def test_tags_are_added_by_the_workers_and_wait_returns_the_outcome(api):
    image = create_image(api)
    response = api.post(f"/api/images/{image['id']}/tags/?wait=10", {"tags": ["Cat ", "dog"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "applied"
    assert body["result"] == {"added": ["cat", "dog"], "already": []}
    assert api.get(f"/api/images/{image['id']}/").json()["tags"] == ["cat", "dog"]

    again = api.post(f"/api/images/{image['id']}/tags/?wait=10", {"tags": ["CAT", "bird"]})
    assert again.json()["result"] == {"added": ["bird"], "already": ["cat"]}
    removed = api.post(f"/api/images/{image['id']}/tags/remove/?wait=10", {"tags": ["dog"]})
    assert removed.json()["result"] == {"removed": ["dog"], "absent": []}
    assert api.get(f"/api/images/{image['id']}/").json()["tags"] == ["bird", "cat"]


def test_tag_write_answers_202_with_where_to_follow_it(local_api):
    image = create_image(local_api)
    response = local_api.post(
        f"/api/images/{image['id']}/tags/", {"tags": ["cat"], "request_id": "t-1"}
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"request_id", "task_id", "status_url", "state"}
    assert body["request_id"] == "t-1"
    assert body["status_url"] == local_api.url("/api/requests/t-1/")
    status = local_api.users["writer"].get(body["status_url"]).json()
    assert status["request_id"] == "t-1" and status["object"] == f"tagging.image:{image['id']}"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"tags": []}, "tags"),
        ({"tags": [f"t{i}" for i in range(51)]}, "tags"),
        ({"tags": ["ok", ""]}, "blank"),
        ({"tags": ["   "]}, "white space"),
        ({"tags": ["x" * 65]}, "64"),
        ({"tags": ["bad\u0007name"]}, "control"),
        ({"tags": ["bad\u0000name"]}, "Null"),
        ({"tags": "cat"}, "tags"),
        ({"tags": [1, 2]}, "tags"),
        ({}, "tags"),
        ({"tags": ["cat"], "request_id": "has space"}, "request_id"),
        ({"tags": ["cat"], "request_id": "x" * 101}, "request_id"),
    ],
)
def test_bad_tag_writes_are_refused_before_anything_is_enqueued(local_api, body, reason):
    image = create_image(local_api)
    assert_error(local_api.post(f"/api/images/{image['id']}/tags/", body), 400, reason)
    assert not WriteRequest.objects.exists()


def test_unknown_image_is_404_before_anything_is_enqueued(local_api):
    assert assert_error(local_api.get("/api/images/999999/"), 404)["code"] == "not_found"
    body = assert_error(local_api.post("/api/images/999999/tags/", {"tags": ["cat"]}), 404)
    assert body["code"] == "guarded_object_not_found"
    assert not WriteRequest.objects.exists()


def test_bad_image_create(local_api):
    assert_error(local_api.post("/api/images/", {}), 400, "title")
    assert_error(local_api.post("/api/images/", {"title": "x" * 201}), 400, "title")
    assert_error(local_api.post("/api/images/", {"title": "   "}), 400)
    assert assert_error(local_api.post("/api/images/", {"title": 0}), 400)["code"] == "wrong_type"


# --- quotas -----------------------------------------------------------------------------------


def test_quota_create_and_get(local_api):
    quota = create_quota(local_api, limit=5)
    assert quota == {"id": quota["id"], "limit": 5, "remaining": 5, "object": None}
    assert local_api.get(f"/api/quotas/{quota['id']}/").json() == quota


def test_quota_guarding_an_object(local_api):
    image = create_image(local_api)
    quota = create_quota(local_api, limit=3, object=f"tagging.image:{image['id']}")
    assert quota["object"] == f"tagging.image:{image['id']}"
    body = assert_error(
        local_api.post("/api/quotas/", {"limit": 3, "object": f"tagging.image:{image['id']}"}), 409
    )
    assert body["code"] == "conflict"
    missing = assert_error(
        local_api.post("/api/quotas/", {"limit": 3, "object": "tagging.image:999999"}), 404
    )
    assert missing["code"] == "guarded_object_not_found"
    assert_error(
        local_api.post("/api/quotas/", {"limit": 3, "object": "auth.user:1"}), 400, "model"
    )
    assert_error(local_api.post("/api/quotas/", {"limit": 3, "object": "nonsense"}), 400)


@pytest.mark.parametrize("limit", [-1, "ten", None, 10**16, 1.5, "5", True])
def test_bad_quota_limits(local_api, limit):
    assert_error(local_api.post("/api/quotas/", {"limit": limit}), 400, "limit")


def test_consume_until_refused_with_a_reason(api):
    quota = create_quota(api, limit=2)
    path = f"/api/quotas/{quota['id']}/consume/?wait=10"
    first = api.post(path, {"amount": 2}).json()
    second = api.post(path, {}).json()  # amount defaults to 1
    assert (first["state"], first["result"]["remaining"]) == ("applied", 0)
    assert second["state"] == "refused"
    assert second["result"]["reason"] == "insufficient"
    assert api.get(f"/api/quotas/{quota['id']}/").json()["remaining"] == 0


def test_the_same_request_id_twice_is_one_request_applied_once(api):
    quota = create_quota(api, limit=10)
    path = f"/api/quotas/{quota['id']}/consume/"
    first = api.post(path, {"amount": 3, "request_id": "pay-42"})
    second = api.post(path, {"amount": 3, "request_id": "pay-42"})
    assert first.status_code in (200, 202) and second.status_code in (200, 202)
    assert first.json()["request_id"] == second.json()["request_id"] == "pay-42"
    final = api.post(f"{path}?wait=10", {"amount": 3, "request_id": "pay-42"}).json()
    assert final["state"] == "applied"
    assert api.get(f"/api/quotas/{quota['id']}/").json()["remaining"] == 7
    assert QuotaLedgerEntry.objects.filter(request_id="pay-42").count() == 1
    conflict = api.post(path, {"amount": 4, "request_id": "pay-42"})
    assert assert_error(conflict, 409)["code"] == "request_id_conflict"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -1}, "amount"),
        ({"amount": 10**13}, "amount"),
        ({"amount": "one"}, "amount"),
        ({"amount": "2"}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": 1.5}, "amount"),
        ({"amount": 1, "request_id": ""}, "request_id"),
    ],
)
def test_bad_consumptions_are_refused_before_anything_is_enqueued(local_api, body, reason):
    quota = create_quota(local_api, limit=10)
    assert_error(local_api.post(f"/api/quotas/{quota['id']}/consume/", body), 400, reason)
    assert not WriteRequest.objects.exists()


def test_an_amount_above_the_limit_can_never_fit_409(local_api):
    quota = create_quota(local_api, limit=10)
    path = f"/api/quotas/{quota['id']}/consume/"
    body = assert_error(local_api.post(path, {"amount": 11}), 409, "limit of 10")
    assert body["code"] == "amount_above_limit"
    batch = assert_error(
        local_api.post(f"{path}batch/", {"items": [{"amount": 10}, {"amount": 11}]}), 409, "item 1"
    )
    assert batch["code"] == "amount_above_limit"
    assert not WriteRequest.objects.exists()


def test_unknown_quota_is_404_before_anything_is_enqueued(local_api):
    assert assert_error(local_api.get("/api/quotas/999999/"), 404)["code"] == "not_found"
    body = assert_error(local_api.post("/api/quotas/999999/consume/", {"amount": 1}), 404)
    assert body["code"] == "guarded_object_not_found"
    assert not WriteRequest.objects.exists()


def test_refill(api):
    quota = create_quota(api, limit=5)
    api.post(f"/api/quotas/{quota['id']}/consume/?wait=10", {"amount": 4})
    response = api.post(f"/api/quotas/{quota['id']}/refill/?wait=10", {"amount": 10})
    assert response.status_code == 200, response.text
    refill = response.json()
    assert refill["state"] == "applied"
    assert (refill["result"]["delta"], refill["result"]["remaining"]) == (4, 5)


def test_a_batch_of_consumptions_is_applied_in_item_order_each_with_its_outcome(api):
    quota = create_quota(api, limit=5)
    items = [{"amount": 2, "request_id": f"b-{n}"} for n in range(3)] + [{"amount": 1}]
    response = api.post(f"/api/quotas/{quota['id']}/consume/batch/", {"items": items})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 4
    assert [r["request_id"] for r in body["requests"][:3]] == ["b-0", "b-1", "b-2"]
    assert body["requests"][0]["status_url"].endswith("/api/requests/b-0/")
    for _ in range(100):
        finals = [api.get(f"/api/requests/{r['request_id']}/").json() for r in body["requests"]]
        if all(f["state"] != "pending" for f in finals):
            break
        time.sleep(0.1)
    # As one by one, in item order: 2, 2 granted; the third 2 no longer fits; the 1 does.
    assert [f["state"] for f in finals] == ["applied", "applied", "refused", "applied"]
    assert api.get(f"/api/quotas/{quota['id']}/").json()["remaining"] == 0
    again = api.post(f"/api/quotas/{quota['id']}/consume/batch/", {"items": items[:3]}).json()
    assert again["accepted"] == 0  # the same request ids: the same requests, applied once
    assert QuotaLedgerEntry.objects.filter(quota_id=quota["id"]).count() == 4


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"items": []}, "items"),
        ({"items": "x"}, "items"),
        ({}, "items"),
        ({"items": [{"amount": 1}] * 501}, "items"),
        ({"items": [{"amount": 1}, {"amount": 0}]}, "amount"),
        ({"items": [{"amount": "1"}]}, "amount"),
        ({"items": [{"amount": 1, "request_id": "bad id"}]}, "request_id"),
    ],
)
def test_bad_batches_are_refused_whole_before_anything_is_enqueued(local_api, body, reason):
    quota = create_quota(local_api, limit=10)
    assert_error(local_api.post(f"/api/quotas/{quota['id']}/consume/batch/", body), 400, reason)
    assert not WriteRequest.objects.exists()


def test_a_batch_reusing_a_request_id_for_another_write_is_refused_whole(local_api):
    quota = create_quota(local_api, limit=10)
    items = [{"amount": 1, "request_id": "twice"}, {"amount": 2, "request_id": "twice"}]
    body = assert_error(
        local_api.post(f"/api/quotas/{quota['id']}/consume/batch/", {"items": items}), 409
    )
    assert body["code"] == "request_id_conflict"
    assert not WriteRequest.objects.exists()
    missing = assert_error(
        local_api.post("/api/quotas/999999/consume/batch/", {"items": [{"amount": 1}]}), 404
    )
    assert missing["code"] == "guarded_object_not_found"


@pytest.mark.parametrize("wait", ["abc", "-1", "11", "nan", "1.5", ""])
def test_bad_wait_values(local_api, wait):
    quota = create_quota(local_api)
    assert_error(local_api.post(f"/api/quotas/{quota['id']}/consume/?wait={wait}", {}), 400, "wait")


# --- request status ---------------------------------------------------------------------------


def test_request_status(api):
    quota = create_quota(api)
    accepted = api.post(f"/api/quotas/{quota['id']}/consume/?wait=10", {"request_id": "s-1"})
    status = api.get("/api/requests/s-1/").json()
    assert status["state"] == accepted.json()["state"] == "applied"
    assert status["kind"] == "quotas.consume"
    assert status["result"]["remaining"] == 9
    assert status["finished_at"] is not None
    assert_error(api.get("/api/requests/nope/"), 404)
    assert_error(api.get("/api/requests/s-1/", as_="reader"), 403)
    assert api.get("/api/requests/s-1/", as_="operator").status_code == 200


# --- request-level errors ---------------------------------------------------------------------


def test_malformed_requests_get_json_4xx(local_api):
    quota = create_quota(local_api)
    path = local_api.url(f"/api/quotas/{quota['id']}/consume/")
    writer = local_api.users["writer"]
    not_json = writer.post(path, data="{nope", headers={"Content-Type": "application/json"})
    assert_error(not_json, 400, "JSON")
    form = writer.post(
        path, data="amount=1", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert_error(form, 415)
    huge = writer.post(
        path, data="[" + "1," * 40000 + "1]", headers={"Content-Type": "application/json"}
    )
    assert_error(huge, 413)
    assert_error(local_api.get("/api/no-such-thing/"), 404)
    assert not WriteRequest.objects.exists()


def test_schema_and_docs(local_api):
    schema = local_api.get("/api/schema/?format=json", as_=None)
    assert schema.status_code == 200
    assert schema.json()["openapi"].startswith("3.")
    assert "/api/quotas/{quota_id}/consume/" in schema.json()["paths"]
    docs = local_api.get("/api/docs/", as_=None)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
