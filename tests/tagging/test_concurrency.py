"""The seed's race (concurrent `tags.add` through an explicit through model), for real.

First the race itself, proven to exist with the seed's check-then-insert; then the service
under the same pressure: 16 processes, same pairs, same new tag names, zero exceptions.
"""

import threading

import pytest
from django.db import IntegrityError, connection, transaction

from tagging.models import Image, ImageTag, Tag
from tagging.services import image_add_tags
from tests.concurrency import raised, run_in_processes, run_threads
from tests.factories import ImageFactory, TagFactory
from tests.lockwait import wait_until_blocked

pytestmark = pytest.mark.django_db(transaction=True)

NEW_NAMES = [f"new-{i}" for i in range(8)]


def _service_adds(image_ids):
    return [image_add_tags(image_id=i, tag_names=NEW_NAMES) for i in image_ids]


def _seed_check_then_insert(image_ids, tag_ids):
    """The seed's shape through an explicit through model: look, then insert."""
    errors = 0
    for image_id in image_ids:
        for tag_id in tag_ids:
            try:
                with transaction.atomic():
                    if not ImageTag.objects.filter(image_id=image_id, tag_id=tag_id).exists():
                        ImageTag.objects.create(image_id=image_id, tag_id=tag_id)
            except IntegrityError:
                errors += 1
    return errors


@pytest.mark.processes
def test_16_processes_add_same_pairs_and_create_same_names_without_errors():
    images = [ImageFactory().pk for _ in range(5)]

    results = run_in_processes([(_service_adds, (images,), {}) for _ in range(16)])

    assert raised(results) == []
    assert Tag.objects.filter(name__in=NEW_NAMES).count() == len(NEW_NAMES)
    assert ImageTag.objects.count() == len(images) * len(NEW_NAMES)
    # Exactly one caller reports each pair as newly linked; everybody else saw it linked.
    added = [name for per_process in results for r in per_process for name in r.added]
    already = [name for per_process in results for r in per_process for name in r.already]
    assert len(added) == len(images) * len(NEW_NAMES)
    assert len(already) == 15 * len(images) * len(NEW_NAMES)


@pytest.mark.processes
def test_seed_check_then_insert_does_race_under_the_same_pressure():
    """Honesty check: the harness above can produce the IntegrityError it claims to avoid."""
    images = [ImageFactory().pk for _ in range(20)]
    tags = [TagFactory().pk for _ in range(5)]

    results = run_in_processes([(_seed_check_then_insert, (images, tags), {}) for _ in range(16)])

    assert raised(results) == []
    assert sum(results) > 0, "16 processes never collided: the race test would prove nothing"
    assert ImageTag.objects.count() == len(images) * len(tags)


def test_forced_interleaving_check_then_insert_raises_integrity_error():
    """Deterministic: A and B both look (nothing), A inserts and commits, B inserts."""
    image, tag = ImageFactory(), TagFactory()
    a_looked, b_looked, a_committed = threading.Event(), threading.Event(), threading.Event()
    errors = []

    def a():
        with transaction.atomic():
            assert not ImageTag.objects.filter(image=image, tag=tag).exists()
            a_looked.set()
            b_looked.wait(10)
            ImageTag.objects.create(image=image, tag=tag)
        a_committed.set()
        connection.close()

    def b():
        try:
            with transaction.atomic():
                a_looked.wait(10)
                assert not ImageTag.objects.filter(image=image, tag=tag).exists()
                b_looked.set()
                a_committed.wait(10)
                ImageTag.objects.create(image=image, tag=tag)
        except IntegrityError as exc:
            errors.append(exc)
        finally:
            connection.close()

    run_threads(a, b)

    assert len(errors) == 1
    assert "duplicate key" in str(errors[0])


def test_forced_interleaving_service_waits_instead_of_failing():
    """Same interleaving for the service: B's insert waits on A's uncommitted row, then skips."""
    image = ImageFactory()
    a_inserted = threading.Event()
    results = {}

    def a():
        with transaction.atomic():
            results["a"] = image_add_tags(image_id=image.pk, tag_names=["shared"])
            a_inserted.set()
            # Commit only once B is really blocked behind our uncommitted link row.
            wait_until_blocked(count=1)
        connection.close()

    def b():
        a_inserted.wait(10)
        results["b"] = image_add_tags(image_id=image.pk, tag_names=["shared"])
        connection.close()

    run_threads(a, b)

    assert results["a"].added == ["shared"]
    assert results["b"].added == []
    assert results["b"].already == ["shared"]
    assert ImageTag.objects.filter(image=image).count() == 1
    assert Image.objects.get(pk=image.pk).tags.get().name == "shared"
