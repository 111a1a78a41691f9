import pytest
from django.db import IntegrityError, transaction

from core.errors import InvalidInput
from tagging.models import ImageTag, Tag
from tagging.services import (
    KIND_ADD_TAGS,
    KIND_REMOVE_TAGS,
    MAX_TAGS_PER_REQUEST,
    ImageNotFound,
    InvalidTagList,
    InvalidTagName,
    image_add_tags,
    image_apply_writes,
    image_create,
    image_remove_tags,
    tag_name_normalize,
)
from tests.factories import ImageFactory, TagFactory
from writes.kinds import PendingWrite

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("Cat", "cat"),
        ("  cat ", "cat"),
        ("CAT", "cat"),
        ("black   cat", "black cat"),
        ("Straße", "strasse"),
        ("ｃａｔ", "cat"),  # full-width forms fold to ASCII (NFKC)
        ("👩‍💻", "👩‍💻"),  # zero-width joiner allowed inside emoji
    ],
)
def test_tag_names_normalize_to_one_tag(raw, normalized):
    assert tag_name_normalize(raw) == normalized


@pytest.mark.parametrize(
    "bad", ["", "   ", "x" * 65, "a\x00b", "line\nbreak", "bell\x07", "\u200bzero", 5, None]
)
def test_bad_tag_names_are_refused(bad):
    image = ImageFactory()
    with pytest.raises(InvalidTagName):
        image_add_tags(image_id=image.pk, tag_names=[bad])
    assert not Tag.objects.exists()


@pytest.mark.parametrize(
    "bad", [[], "cat", None, ["t"] * 0, [f"t{i}" for i in range(MAX_TAGS_PER_REQUEST + 1)]]
)
def test_bad_tag_lists_are_refused(bad):
    image = ImageFactory()
    with pytest.raises(InvalidTagList):
        image_add_tags(image_id=image.pk, tag_names=bad)


def test_unknown_image_is_a_domain_error():
    with pytest.raises(ImageNotFound, match="image 424242 does not exist"):
        image_add_tags(image_id=424242, tag_names=["cat"])
    with pytest.raises(ImageNotFound):
        image_remove_tags(image_id=424242, tag_names=["cat"])


def test_add_reports_new_and_existing_links_and_dedupes_names():
    image = ImageFactory()
    first = image_add_tags(image_id=image.pk, tag_names=["Cat", "dog", "cat "])
    second = image_add_tags(image_id=image.pk, tag_names=["DOG", "bird"])
    assert (first.added, first.already) == (["cat", "dog"], [])
    assert (second.added, second.already) == (["bird"], ["dog"])
    assert sorted(image.tags.values_list("name", flat=True)) == ["bird", "cat", "dog"]


def test_remove_reports_removed_and_absent():
    image = ImageFactory()
    image_add_tags(image_id=image.pk, tag_names=["cat"])
    result = image_remove_tags(image_id=image.pk, tag_names=["cat", "never-seen"])
    assert (result.removed, result.absent) == (["cat"], ["never-seen"])
    assert not ImageTag.objects.filter(image=image).exists()
    assert not Tag.objects.filter(name="never-seen").exists()  # removing creates nothing


def test_mixed_group_equals_one_by_one():
    image = ImageFactory()
    ops = [
        (KIND_ADD_TAGS, ["a", "b"]),
        (KIND_REMOVE_TAGS, ["a"]),
        (KIND_ADD_TAGS, ["a"]),
        (KIND_REMOVE_TAGS, ["b", "c"]),
        (KIND_ADD_TAGS, ["b", "c"]),
    ]
    writes = [PendingWrite(f"w{i}", kind, {"tags": tags}) for i, (kind, tags) in enumerate(ops)]
    with transaction.atomic():
        outcomes = image_apply_writes(image_id=image.pk, writes=writes)
    assert [o.result for o in outcomes] == [
        {"added": ["a", "b"], "already": []},
        {"removed": ["a"], "absent": []},
        {"added": ["a"], "already": []},
        {"removed": ["b"], "absent": ["c"]},
        {"added": ["b", "c"], "already": []},
    ]
    assert sorted(image.tags.values_list("name", flat=True)) == ["a", "b", "c"]


def test_a_bad_write_in_a_group_is_refused_alone():
    image = ImageFactory()
    writes = [
        PendingWrite("ok", KIND_ADD_TAGS, {"tags": ["fine"]}),
        PendingWrite("bad", KIND_ADD_TAGS, {"tags": ["\x00"]}),
    ]
    with transaction.atomic():
        ok, bad = image_apply_writes(image_id=image.pk, writes=writes)
    assert ok.state == "applied"
    assert (bad.state, bad.result["reason"]) == ("refused", "invalid_tag_name")


def test_database_guards_hold_for_writers_that_bypass_the_services():
    image, tag = ImageFactory(), TagFactory(name="cat")
    ImageTag.objects.create(image=image, tag=tag)
    with pytest.raises(IntegrityError), transaction.atomic():
        ImageTag.objects.create(image=image, tag=tag)
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(name="Cat")  # case-insensitive unique
    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.create(name="")


def test_image_create_validates_title():
    assert image_create(title="  sunset ").title == "sunset"
    for bad in ("", "   ", "x" * 201, None):
        with pytest.raises(InvalidInput):
            image_create(title=bad)
