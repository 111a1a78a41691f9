"""Partition routing: a stable, even hash of object keys, and the Celery router built on it."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from django.conf import settings
from django.test import override_settings

from workers.celery import app as celery_app
from workers.routing import (
    DRAIN_TASK,
    IDLE_QUEUE,
    SHARED_QUEUE,
    partition_for,
    queue_name,
    route_task,
    write_queues,
)

KEYS = [f"quotas.quota:{n}" for n in range(100)] + [f"tagging.image:{n}" for n in range(100)]

# Prints Python's salted hash() of a key (to prove the seed took effect) and partition_for of
# every key read from stdin. Settings are configured lazily on first access: no django.setup().
_CHILD = """
import json, sys
from writes.partitions import partition_for
keys = json.load(sys.stdin)
print(json.dumps({"salted": hash(keys[0]), "partitions": [partition_for(k) for k in keys]}))
"""


def test_partition_for_is_the_same_in_processes_with_different_hash_seeds():
    seeds = (0, 1, 4242)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD],
            cwd=settings.BASE_DIR,
            env={
                **os.environ,
                "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"],
                "WRITE_PARTITIONS": str(settings.WRITE_PARTITIONS),
                "PYTHONHASHSEED": str(seed),
            },
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in seeds
    ]
    outputs = []
    for child in children:
        stdout, stderr = child.communicate(json.dumps(KEYS), timeout=30)
        assert child.returncode == 0, stderr
        outputs.append(json.loads(stdout))

    # The seeds really changed str hashing, so a hash()-based router would disagree here.
    assert len({output["salted"] for output in outputs}) == len(seeds)
    expected = [partition_for(key) for key in KEYS]
    for output in outputs:
        assert output["partitions"] == expected
    assert set(expected) == set(range(settings.WRITE_PARTITIONS))


@override_settings(WRITE_PARTITIONS=8)  # production's default (the tests run 4)
def test_partition_for_values_are_pinned():
    # Pending rows store their partition: a changed hash would strand them on other queues.
    assert [
        partition_for(key)
        for key in ("quotas.quota:1", "quotas.quota:7", "tagging.image:1", "tagging.image:42")
    ] == [1, 2, 4, 6]


# 99.9% critical values of the chi-square distribution for partitions - 1 degrees of freedom.
@pytest.mark.parametrize(
    ("partitions", "critical"), [(None, 24.32), (5, 18.47), (16, 37.70)], ids=["default", "5", "16"]
)
def test_keys_spread_evenly_over_partitions(partitions, critical):
    count = partitions or settings.WRITE_PARTITIONS
    # 1,250 keys per partition: 10,000 for the default 8.
    per_type = 1250 * count // 2
    keys = [f"quotas.quota:{n}" for n in range(per_type)]
    keys += [f"tagging.image:{n}" for n in range(per_type)]

    buckets = Counter(partition_for(key, partitions) for key in keys)

    assert set(buckets) == set(range(count))
    expected = len(keys) / count
    chi_square = sum((buckets[p] - expected) ** 2 / expected for p in range(count))
    assert chi_square < critical
    assert max(buckets.values()) / min(buckets.values()) < 1.15


@override_settings(WRITE_PARTITIONS=3)
def test_partition_for_defaults_to_the_configured_partition_count():
    partitions = [partition_for(key) for key in KEYS]
    assert partitions == [partition_for(key, 3) for key in KEYS]
    assert set(partitions) == {0, 1, 2}


def test_queues_are_one_per_partition_plus_shared_idle_and_default():
    assert [queue_name(p) for p in range(3)] == ["writes.0", "writes.1", "writes.2"]
    queues = write_queues()
    partition_queues = [f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)]
    # writes.idle: what an elastic worker consumes before it holds any partition.
    assert [q.name for q in queues] == [*partition_queues, SHARED_QUEUE, IDLE_QUEUE, "celery"]
    # The writes exchange is direct: each queue must be bound under its own name.
    assert all(q.routing_key == q.name for q in queues)
    assert {q.exchange.name for q in queues[:-1]} == {"writes"}


WRITE_TASKS = [
    ("quotas.consume", "quotas.quota", "quota_id", {"amount": 1}),
    ("quotas.refill", "quotas.quota", "quota_id", {"amount": 5}),
    ("tagging.add_tags", "tagging.image", "image_id", {"tags": ["cat"]}),
    ("tagging.remove_tags", "tagging.image", "image_id", {"tags": ["cat"]}),
]


@pytest.mark.parametrize(
    ("name", "label", "id_arg", "payload"), WRITE_TASKS, ids=[t[0] for t in WRITE_TASKS]
)
def test_router_sends_a_write_task_to_its_objects_partition_queue(name, label, id_arg, payload):
    routes = {}
    for object_id in range(200):
        kwargs = {id_arg: object_id, **payload, "request_id": f"r{object_id}"}
        routes[object_id] = route_task(name, (), kwargs, {})

    assert routes == {
        object_id: {"queue": f"writes.{partition_for(f'{label}:{object_id}')}"}
        for object_id in range(200)
    }
    # Not one constant queue: the objects use every partition.
    assert {route["queue"] for route in routes.values()} == {
        f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)
    }


def test_router_sends_a_drain_to_the_partition_it_names():
    assert [
        route_task(DRAIN_TASK, (), {"partition": p}, {}) for p in range(settings.WRITE_PARTITIONS)
    ] == [{"queue": f"writes.{p}"} for p in range(settings.WRITE_PARTITIONS)]


def test_router_leaves_other_tasks_to_the_default_queue():
    assert route_task("workers.something_else", (), {}, {}) is None


@override_settings(WRITE_ROUTING="shared")
def test_shared_routing_sends_every_write_to_the_shared_queue():
    assert route_task("quotas.consume", (), {"quota_id": 7, "amount": 1}, {}) == {
        "queue": SHARED_QUEUE
    }
    assert route_task("tagging.add_tags", (), {"image_id": 42, "tags": ["a"]}, {}) == {
        "queue": SHARED_QUEUE
    }
    assert route_task(DRAIN_TASK, (), {"partition": 3}, {}) == {"queue": SHARED_QUEUE}


def test_the_celery_app_routes_through_route_task():
    # send_task() asks app.amqp.router: the configured task_routes must reach route_task.
    router = celery_app.amqp.router
    kwargs = {"quota_id": 7, "amount": 1, "request_id": "r7"}
    assert router.route({}, "quotas.consume", (), kwargs)["queue"].name == (
        f"writes.{partition_for('quotas.quota:7')}"
    )
    kwargs = {"image_id": 42, "tags": ["a"], "request_id": "r42"}
    assert router.route({}, "tagging.add_tags", (), kwargs)["queue"].name == (
        f"writes.{partition_for('tagging.image:42')}"
    )
    assert router.route({}, DRAIN_TASK, (), {"partition": 5})["queue"].name == "writes.5"
    assert router.route({}, "workers.something_else", (), {})["queue"].name == "celery"


@pytest.mark.parametrize("partitions", [0, -1])
def test_partition_for_refuses_a_count_below_one(partitions):
    with pytest.raises(ValueError, match="at least 1"):
        partition_for("quotas.quota:1", partitions)
