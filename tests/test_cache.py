"""The Redis cache backend of config/cache.py, against the real Redis of this machine."""

from __future__ import annotations

import threading

import pytest
from django.contrib.sessions.backends.cached_db import SessionStore
from django.core.cache import caches
from django.test import override_settings

from config.cache import RedisCache
from tests.scoring.worker import REDIS_URL


def _key_prefix(request: pytest.FixtureRequest) -> str:
    return f"test-cache-{request.node.name}-"


@pytest.fixture
def redis_cache(request: pytest.FixtureRequest) -> RedisCache:
    cache = RedisCache(REDIS_URL, {"KEY_PREFIX": _key_prefix(request)})
    yield cache
    cache.delete_many(["a", "n", "gone"])


def test_one_client_per_pool_and_every_operation_works(redis_cache: RedisCache) -> None:
    assert redis_cache.get("a") is None
    redis_cache.set("a", {"history": [1.5, 2.5]}, 30)
    assert redis_cache.get("a") == {"history": [1.5, 2.5]}
    assert redis_cache.add("a", "other", 30) is False
    redis_cache.set("n", 1, 30)
    assert redis_cache.incr("n", 2) == 3
    assert redis_cache.delete("a") is True
    assert redis_cache.get("a", "default") == "default"
    client = redis_cache._cache
    # Django's own client builds a redis.Redis for every call (about 90 us each, issue 16).
    assert client.get_client() is client.get_client(write=True)


def test_shared_by_threads(redis_cache: RedisCache) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                redis_cache.set(f"t{n}", i, 30)
                assert redis_cache.get(f"t{n}") == i
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    redis_cache.delete_many([f"t{n}" for n in range(8)])
    assert errors == []


@pytest.mark.django_db
def test_sessions_read_back_through_it(request: pytest.FixtureRequest) -> None:
    settings = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": _key_prefix(request),
        }
    }
    with override_settings(CACHES=settings):
        session = SessionStore()
        session["who"] = "annotator"
        session.save()
        assert caches["default"].get(session.cache_key) is not None
        assert SessionStore(session.session_key)["who"] == "annotator"
        session.delete()
