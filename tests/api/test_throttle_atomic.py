"""The write throttle checks and charges in one atomic step, against the real Redis.

The interleaving that used to refuse a write that fits: a batch over budget charged in full
first and gave its charge back only after finding itself over budget; a single write landing
in between was refused (and charged). Here every Redis call the batch makes is followed, at
once, by the single write's check: the worst interleaving, forced."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from django.test import override_settings

from core.redis_client import redis_client
from core.throttling import WriteRateThrottle


class _AfterEachCall:
    """A Redis client that runs `hook` after each command (and each pipeline) it sends."""

    def __init__(self, real, hook) -> None:
        self._real, self._hook = real, hook

    def register_script(self, script):
        from redis.commands.core import Script

        return Script(self, script)

    def pipeline(self, *args, **kwargs):
        real_pipeline, hook = self._real.pipeline(*args, **kwargs), self._hook

        class _Pipeline:
            def __getattr__(self, name):
                return getattr(real_pipeline, name)

            def execute(self):
                result = real_pipeline.execute()
                hook()
                return result

        return _Pipeline()

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            result = attr(*args, **kwargs)
            self._hook()
            return result

        return call


def _request(user_id: int):
    user = SimpleNamespace(pk=user_id, is_authenticated=True)
    return SimpleNamespace(user=user, META={})


@override_settings(
    REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"writes": "3/minute"}},
)
def test_a_batch_over_budget_never_refuses_a_write_that_fits(cache_redis):
    request = _request(user_id=7)
    assert WriteRateThrottle().allow_writes(request, 1)  # 1 of 3 used
    single_results = []

    def single_write_lands_now():
        if not single_results:
            single_results.append(WriteRateThrottle().allow_writes(request, 1))

    batch = WriteRateThrottle(client=_AfterEachCall(redis_client(), single_write_lands_now))
    assert batch.allow_writes(request, 3) is False  # 1 + 3 > 3: refused whole
    assert single_results == [True]  # 1 + 1 fits: accepted, whatever the interleaving
    # Exactly the two accepted writes are charged: one more fits, then none.
    assert WriteRateThrottle().allow_writes(request, 1) is True
    assert WriteRateThrottle().allow_writes(request, 1) is False


@override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"writes": "5/minute"}})
def test_the_throttle_survives_redis_forgetting_its_script(cache_redis):
    request = _request(user_id=8)
    assert WriteRateThrottle().allow_writes(request, 2)
    cache_redis.script_flush()
    assert WriteRateThrottle().allow_writes(request, 3)
    assert not WriteRateThrottle().allow_writes(request, 1)


@pytest.mark.parametrize("count", [1, 4])
@override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"writes": "3/minute"}})
def test_what_is_refused_is_not_charged(cache_redis, count):
    request = _request(user_id=9)
    assert WriteRateThrottle().allow_writes(request, 3)
    assert not WriteRateThrottle().allow_writes(request, count)
    key = next(iter(cache_redis.scan_iter("racefree:throttle:9:*")))
    assert int(cache_redis.get(key)) == 3
