"""The write views' fast validation never accepts what their serializer would not, and
accepts it as the serializer would (same payload, same request_id). In-process."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from quotas.api import QuotaConsumeView
from quotas.services import MAX_AMOUNT
from tagging.api import ImageTagsAddView

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**13), 10**13) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
# The edges where a quick check would most easily differ from DRF's fields.
edges = st.sampled_from(
    [True, False, 0, 1, MAX_AMOUNT, MAX_AMOUNT + 1, "1", " 2", 1.0, 2.5, None, [], {}]
)
request_ids = st.text(max_size=12) | st.from_regex(
    r"[A-Za-z0-9][A-Za-z0-9._:-]{0,20}", fullmatch=True
)
tag_names = st.text(max_size=70) | st.sampled_from(["a", " A", "a\x00", "", "é" * 64, "x" * 257])
amount_bodies = (
    st.dictionaries(
        st.sampled_from(["amount", "request_id", "other"]),
        edges | json_values | st.integers(0, 10**13) | request_ids,
        max_size=3,
    )
    | json_values
)
tag_bodies = (
    st.dictionaries(
        st.sampled_from(["tags", "request_id", "other"]),
        edges | json_values | st.lists(tag_names | edges, max_size=55) | request_ids,
        max_size=3,
    )
    | json_values
)


def _agrees(view, body) -> None:
    fast = view.fast_validate(body)
    if fast is None:
        return  # the serializer decides: nothing to compare
    serializer = view.serializer_class(data=body)
    assert serializer.is_valid(), (body, serializer.errors)
    data = serializer.validated_data
    assert fast == (view.payload(data), data.get("request_id"))


@settings(max_examples=500, deadline=None)
@given(amount_bodies)
def test_consume_fast_validation_agrees_with_the_serializer(body):
    _agrees(QuotaConsumeView(), body)


@settings(max_examples=500, deadline=None)
@given(tag_bodies)
def test_tags_fast_validation_agrees_with_the_serializer(body):
    _agrees(ImageTagsAddView(), body)


def test_the_common_bodies_take_the_fast_path():
    assert QuotaConsumeView().fast_validate({}) == ({"amount": 1}, None)
    assert QuotaConsumeView().fast_validate({"amount": 3, "request_id": "a-1"}) == (
        {"amount": 3},
        "a-1",
    )
    assert ImageTagsAddView().fast_validate({"tags": ["Cat ", "dog"]}) == (
        {"tags": ["cat", "dog"]},
        None,
    )
