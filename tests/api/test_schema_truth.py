"""The OpenAPI schema tells the truth: every limit the server enforces is refused with a 4xx
and a JSON reason, and declared in the schema (fetched from /api/schema/ in process).
Nothing is coerced: a JSON value of the wrong type is a 400 `wrong_type`."""

from __future__ import annotations

import re
import unicodedata

import pytest

from core.errors import InvalidInput
from quotas.services import MAX_AMOUNT, MAX_LIMIT
from tagging.services import tag_name_normalize
from writes.models import WriteRequest

_SCHEMA: dict = {}


def schema(api) -> dict:
    if not _SCHEMA:
        response = api.get("/api/schema/?format=json", as_=None)
        assert response.status_code == 200
        _SCHEMA.update(response.json())
    return _SCHEMA


def component(api, name: str) -> dict:
    return schema(api)["components"]["schemas"][name]


def operation(api, path: str, method: str = "post") -> dict:
    return schema(api)["paths"][path][method]


def body_schema(api, path: str) -> dict:
    ref = operation(api, path)["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return component(api, ref.rsplit("/", 1)[1])


def declares_error(api, path: str, status: int, method: str = "post") -> bool:
    answer = operation(api, path, method)["responses"].get(str(status))
    if answer is None:
        return False
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    return ref.endswith("/ApiError")


def refused(response, status: int, code: str | None = None, text: str | None = None) -> dict:
    """A 4xx with a JSON reason: `detail` and `code`."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["detail"], str) and body["detail"], body
    assert isinstance(body["code"], str) and body["code"], body
    if code is not None:
        assert body["code"] == code, body
    if text is not None:
        assert text in str(body), body
    return body


def image(api) -> dict:
    response = api.post("/api/images/", {"title": "t"})
    assert response.status_code == 201, response.text
    return response.json()


def quota(api, limit: int = 10) -> dict:
    response = api.post("/api/quotas/", {"limit": limit})
    assert response.status_code == 201, response.text
    return response.json()


CONSUME = "/api/quotas/{quota_id}/consume/"
BATCH = "/api/quotas/{quota_id}/consume/batch/"
TAGS = "/api/images/{image_id}/tags/"


# --- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize("title", [0, 1.5, True, ["t"], {"t": 1}, None])
def test_a_title_must_be_a_string(local_api, title):
    code = "null" if title is None else "wrong_type"
    refused(local_api.post("/api/images/", {"title": title}), 400, code, "title")
    assert component(local_api, "ImageRequest")["properties"]["title"]["type"] == "string"
    assert "nullable" not in component(local_api, "ImageRequest")["properties"]["title"]


@pytest.mark.parametrize("title", ["", "   ", "a\x00b"])
def test_a_title_needs_a_visible_character_and_no_nul(local_api, title):
    refused(local_api.post("/api/images/", {"title": title}), 400, text="title")
    declared = component(local_api, "ImageRequest")["properties"]["title"]
    assert declared["minLength"] == 1
    assert re.fullmatch(declared["pattern"], title) is None
    assert re.fullmatch(declared["pattern"], " a ") is not None


def test_a_title_is_at_most_200_characters_as_given(local_api):
    refused(local_api.post("/api/images/", {"title": "x" * 201}), 400, "max_length")
    # Not trimmed before it is measured: the schema's maxLength counts what is sent.
    refused(local_api.post("/api/images/", {"title": " " + "x" * 200}), 400, "max_length")
    assert component(local_api, "ImageRequest")["properties"]["title"]["maxLength"] == 200


# --- quotas -----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["5", 5.0, True, None, [5]])
def test_a_limit_must_be_a_json_integer(local_api, limit):
    refused(local_api.post("/api/quotas/", {"limit": limit}), 400, text="limit")
    assert component(local_api, "QuotaRequest")["properties"]["limit"]["type"] == "integer"


@pytest.mark.parametrize(("limit", "code"), [(-1, "min_value"), (MAX_LIMIT + 1, "max_value")])
def test_a_limit_is_within_its_declared_range(local_api, limit, code):
    refused(local_api.post("/api/quotas/", {"limit": limit}), 400, code, "limit")
    declared = component(local_api, "QuotaRequest")["properties"]["limit"]
    assert (declared["minimum"], declared["maximum"]) == (0, MAX_LIMIT)


@pytest.mark.parametrize(
    "reference",
    [
        "nonsense",
        "auth.user:1",
        "tagging.image:",
        "tagging.image:x",
        " tagging.image:1",
        "tagging.image:1\n",
        "tagging.image:01",
        "tagging.image:0",
        7,
    ],
)
def test_the_object_reference_follows_its_declared_pattern(local_api, reference):
    refused(local_api.post("/api/quotas/", {"limit": 1, "object": reference}), 400, text="object")
    declared = component(local_api, "QuotaRequest")["properties"]["object"]
    assert declared["type"] == "string"
    # ECMA-262 reads `$` as the end of the text: fullmatch is Python's equivalent.
    assert not isinstance(reference, str) or re.fullmatch(declared["pattern"], reference) is None


def test_a_missing_guarded_object_is_404_and_declared(local_api):
    body = refused(
        local_api.post("/api/quotas/", {"limit": 1, "object": "tagging.image:999999"}),
        404,
        "guarded_object_not_found",
    )
    assert "999999" in body["detail"]
    declared = component(local_api, "QuotaRequest")["properties"]["object"]
    assert re.search(declared["pattern"], "tagging.image:999999")
    assert declares_error(local_api, "/api/quotas/", 404)


# --- consumptions -----------------------------------------------------------------------------


@pytest.mark.parametrize("amount", ["2", 2.0, True, None, [2]])
def test_an_amount_must_be_a_json_integer(local_api, amount):
    q = quota(local_api)
    response = local_api.post(f"/api/quotas/{q['id']}/consume/", {"amount": amount})
    refused(response, 400, text="amount")
    batch = local_api.post(f"/api/quotas/{q['id']}/consume/batch/", {"items": [{"amount": amount}]})
    refused(batch, 400, text="amount")
    assert not WriteRequest.objects.exists()
    assert body_schema(local_api, CONSUME)["properties"]["amount"]["type"] == "integer"


@pytest.mark.parametrize(("amount", "code"), [(0, "min_value"), (MAX_AMOUNT + 1, "max_value")])
def test_an_amount_is_within_its_declared_range(local_api, amount, code):
    q = quota(local_api)
    refused(local_api.post(f"/api/quotas/{q['id']}/consume/", {"amount": amount}), 400, code)
    declared = body_schema(local_api, CONSUME)["properties"]["amount"]
    assert (declared["minimum"], declared["maximum"]) == (1, MAX_AMOUNT)


def test_an_amount_above_the_limit_is_409_and_declared(local_api):
    q = quota(local_api, limit=10)
    single = local_api.post(f"/api/quotas/{q['id']}/consume/", {"amount": 11})
    refused(single, 409, "amount_above_limit")
    batch = local_api.post(
        f"/api/quotas/{q['id']}/consume/batch/", {"items": [{"amount": 1}, {"amount": 11}]}
    )
    assert "item 1" in refused(batch, 409, "amount_above_limit")["detail"]
    assert not WriteRequest.objects.exists()
    for path in (CONSUME, BATCH):
        assert declares_error(local_api, path, 409)
        assert "amount_above_limit" in operation(local_api, path)["responses"]["409"]["description"]


@pytest.mark.parametrize("path", ["consume/", "refill/", "consume/batch/"])
def test_a_missing_quota_is_404_guarded_object_not_found_and_declared(local_api, path):
    body = {"items": [{"amount": 1}]} if "batch" in path else {"amount": 1}
    refused(local_api.post(f"/api/quotas/999999/{path}", body), 404, "guarded_object_not_found")
    assert not WriteRequest.objects.exists()
    assert declares_error(local_api, "/api/quotas/{quota_id}/" + path, 404)


@pytest.mark.parametrize("request_id", ["", "has space", "x" * 101, "-lead", 5, "a\n"])
def test_a_request_id_follows_its_declared_pattern(local_api, request_id):
    q = quota(local_api)
    response = local_api.post(f"/api/quotas/{q['id']}/consume/", {"request_id": request_id})
    refused(response, 400, text="request_id")
    declared = body_schema(local_api, CONSUME)["properties"]["request_id"]
    assert declared["type"] == "string" and declared["maxLength"] == 100
    if isinstance(request_id, str) and len(request_id) <= 100:
        assert re.fullmatch(declared["pattern"], request_id) is None


@pytest.mark.parametrize(("count", "code"), [(0, "min_length"), (501, "max_length")])
def test_a_batch_holds_1_to_500_items_as_declared(local_api, count, code):
    q = quota(local_api)
    items = [{}] * count
    refused(local_api.post(f"/api/quotas/{q['id']}/consume/batch/", {"items": items}), 400, code)
    declared = body_schema(local_api, BATCH)["properties"]["items"]
    assert (declared["minItems"], declared["maxItems"]) == (1, 500)


# --- ?wait ------------------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["wait=1.5", "wait=abc", "wait=", "wait=nan", "wait=1e1"])
def test_wait_must_be_an_integer(local_api, query):
    q = quota(local_api)
    refused(local_api.post(f"/api/quotas/{q['id']}/consume/?{query}", {}), 400, text="wait")
    [wait] = [p for p in operation(local_api, CONSUME)["parameters"] if p["name"] == "wait"]
    assert wait["schema"]["type"] == "integer"


@pytest.mark.parametrize("query", ["wait=11", "wait=-1"])
def test_wait_is_from_0_to_10_as_declared(local_api, query):
    q = quota(local_api)
    refused(local_api.post(f"/api/quotas/{q['id']}/consume/?{query}", {}), 400, text="wait")
    for path in (CONSUME, TAGS, "/api/images/{image_id}/tags/remove/", CONSUME[:-8] + "refill/"):
        [wait] = [p for p in operation(local_api, path)["parameters"] if p["name"] == "wait"]
        assert (wait["schema"]["minimum"], wait["schema"]["maximum"]) == (0, 10)


def test_wait_is_given_at_most_once(local_api):
    q = quota(local_api)
    path = f"/api/quotas/{q['id']}/consume/?wait=0&wait=1"
    refused(local_api.post(path, {}), 400, text="at most once")
    [wait] = [p for p in operation(local_api, CONSUME)["parameters"] if p["name"] == "wait"]
    assert "at most once" in wait["description"]
    assert wait["schema"]["type"] != "array" and wait.get("explode") is not True


def test_wait_0_to_10_is_accepted(local_api, monkeypatch):
    from writes import api as writes_api

    waited = []
    monkeypatch.setattr(
        writes_api, "write_request_wait", lambda request, timeout: waited.append(timeout)
    )
    q = quota(local_api)
    for wait in ("0", "10", "3"):
        response = local_api.post(f"/api/quotas/{q['id']}/consume/?wait={wait}", {})
        assert response.status_code in (200, 202), response.text
    assert waited == [10, 3]


# --- tags -------------------------------------------------------------------------------------


def test_tags_must_not_be_empty_and_the_schema_says_so(local_api):
    img = image(local_api)
    refused(local_api.post(f"/api/images/{img['id']}/tags/", {"tags": []}), 400, text="tags")
    assert body_schema(local_api, TAGS)["properties"]["tags"]["minItems"] == 1


def test_at_most_50_tags(local_api):
    img = image(local_api)
    tags = [f"t{i}" for i in range(51)]
    refused(local_api.post(f"/api/images/{img['id']}/tags/", {"tags": tags}), 400, "max_length")
    assert body_schema(local_api, TAGS)["properties"]["tags"]["maxItems"] == 50


@pytest.mark.parametrize("name", [1, True, None, ["cat"]])
def test_a_tag_name_must_be_a_string(local_api, name):
    img = image(local_api)
    code = "null" if name is None else "wrong_type"
    refused(local_api.post(f"/api/images/{img['id']}/tags/", {"tags": [name]}), 400, code)
    assert body_schema(local_api, TAGS)["properties"]["tags"]["items"]["type"] == "string"


def test_a_tag_name_is_at_most_64_characters_as_given(local_api):
    img = image(local_api)
    for name in ("x" * 65, " " * 60 + "cat" + " " * 2):
        response = local_api.post(f"/api/images/{img['id']}/tags/", {"tags": [name]})
        refused(response, 400, text="tags")
    assert body_schema(local_api, TAGS)["properties"]["tags"]["items"]["maxLength"] == 64


@pytest.mark.parametrize("name", ["", "   ", "bad\x07name", "a\x85b", "\t", "a\n"])
def test_tag_name_characters_follow_the_declared_pattern(local_api, name):
    img = image(local_api)
    refused(local_api.post(f"/api/images/{img['id']}/tags/", {"tags": [name]}), 400, text="tags")
    pattern = body_schema(local_api, TAGS)["properties"]["tags"]["items"]["pattern"]
    assert re.fullmatch(pattern, name) is None
    assert re.fullmatch(pattern, " Cat\u200d😀 ") is not None


def test_what_the_tag_name_pattern_refuses_the_server_refuses(local_api):
    """Every character, beside a visible one: a name the declared pattern refuses is refused
    by the server too (and the rest of the rule is in the description)."""
    declared = body_schema(local_api, TAGS)["properties"]["tags"]
    pattern = re.compile(declared["items"]["pattern"])
    accepted_but_undeclared = []
    for point in range(0x110000):
        if unicodedata.category(chr(point)) == "Cs":
            continue  # not in any JSON text a client can send as UTF-8
        name = "a" + chr(point)
        if pattern.fullmatch(name) is not None:
            continue
        try:
            tag_name_normalize(name)
        except InvalidInput:
            continue
        accepted_but_undeclared.append(hex(point))
    assert not accepted_but_undeclared, accepted_but_undeclared[:20]
    for words in ("format", "private-use", "unassigned", "normalized"):
        assert words in declared["description"]


def test_a_missing_image_is_404_guarded_object_not_found_and_declared(local_api):
    for path in ("tags/", "tags/remove/"):
        response = local_api.post(f"/api/images/999999/{path}", {"tags": ["cat"]})
        refused(response, 404, "guarded_object_not_found")
        assert declares_error(local_api, "/api/images/{image_id}/" + path, 404)
    assert not WriteRequest.objects.exists()


# --- every answer -----------------------------------------------------------------------------


def test_unknown_body_fields_are_ignored_and_the_schema_does_not_forbid_them(local_api):
    q = quota(local_api)
    response = local_api.post(f"/api/quotas/{q['id']}/consume/", {"amount": 1, "colour": "red"})
    assert response.status_code == 202, response.text
    created = local_api.post("/api/images/", {"title": "t", "extra": [1]})
    assert created.status_code == 201, created.text
    for name, declared in schema(local_api)["components"]["schemas"].items():
        assert declared.get("additionalProperties") is not False, name
    assert "ignored" in schema(local_api)["info"]["description"]


def test_every_error_the_server_answers_is_declared_with_the_error_body(local_api):
    q = quota(local_api)
    path = f"/api/quotas/{q['id']}/consume/"
    writer = local_api.users["writer"]
    answers = {
        401: local_api.post(path, {}, as_=None),
        403: local_api.post(path, {}, as_="reader"),
        413: writer.post(
            local_api.url(path),
            data="[" + "1," * 40000 + "1]",
            headers={"Content-Type": "application/json"},
        ),
        415: writer.post(
            local_api.url(path),
            data="amount=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        ),
        400: writer.post(
            local_api.url(path), data="{nope", headers={"Content-Type": "application/json"}
        ),
    }
    for status, response in answers.items():
        refused(response, status)
        for template in (CONSUME, BATCH, TAGS, "/api/quotas/{quota_id}/refill/"):
            assert declares_error(local_api, template, status), (template, status)
    for template, method in [
        ("/api/quotas/{quota_id}/", "get"),
        ("/api/images/{image_id}/", "get"),
        ("/api/requests/{request_id}/", "get"),
    ]:
        for status in (401, 403, 404, 503):
            assert declares_error(local_api, template, status, method), (template, status)
    for template in (CONSUME, BATCH, TAGS, "/api/quotas/", "/api/images/"):
        assert declares_error(local_api, template, 503)
        assert "Retry-After" in operation(local_api, template)["responses"]["503"]["headers"]
    refused(local_api.get("/api/quotas/999999/"), 404, "not_found")
