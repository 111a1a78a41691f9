import pytest

# What needs the live stack (an API server, Flower, partition worker processes) is e2e,
# whichever module it is in: the fast lane (`scripts/test.sh --quick`) leaves it out.
_LIVE_FIXTURES = {"live_stack", "fault_stack", "deploy", "cluster"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _LIVE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session", autouse=True)
def _pg_listener_stops_before_the_test_database_is_dropped(django_db_setup):
    """The notification listener and the group commit hold connections to the test database."""
    from core.pg_listener import listener
    from writes import services

    yield
    listener.stop()
    services._flush_connection.close()


@pytest.fixture
def user(db):
    from tests.factories import UserFactory

    return UserFactory()


@pytest.fixture
def broker_redis():
    """The test broker's Redis database, emptied before and after the test."""
    import redis
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.skip("inspects a Redis broker")
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def cache_redis():
    """The test cache/lease Redis database, emptied before and after the test."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def clean_broker():
    """Nothing left over in the test broker from an earlier test."""

    import redis
    from django.conf import settings

    from workers.broker import broker_is_redis
    from workers.celery import app as celery_app

    def clean() -> None:
        if broker_is_redis():
            redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
        else:
            celery_app.control.purge()

    clean()
    yield
    clean()
