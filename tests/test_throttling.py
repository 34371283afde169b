"""The API's per-user cap (config/throttling.py): a runaway client is answered 429 with
Retry-After, other users are not; the Redis counter behind it (config/cache.py)."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from config.cache import RedisCache
from config.throttling import UserRateThrottle
from tests.factories import make_user
from tests.scoring.worker import REDIS_URL


@pytest.fixture
def three_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    cache.clear()
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min"})
    yield
    cache.clear()


@pytest.mark.django_db
def test_a_runaway_client_is_capped_and_told_when_to_retry(three_a_minute: None) -> None:
    runaway, other = APIClient(), APIClient()
    runaway.force_authenticate(make_user("runaway"))
    other.force_authenticate(make_user("other"))
    codes = [runaway.get("/api/projects/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    refused = runaway.get("/api/projects/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert other.get("/api/projects/").status_code == 200


@pytest.fixture
def redis_cache(request: pytest.FixtureRequest) -> RedisCache:
    cache = RedisCache(REDIS_URL, {"KEY_PREFIX": f"test-throttle-{request.node.name}-"})
    yield cache
    cache.delete_many(["hits"])


def test_the_redis_counter_counts_every_hit_once_and_expires(redis_cache: RedisCache) -> None:
    counts: list[int] = []
    lock = threading.Lock()

    def hit() -> None:
        for _ in range(25):
            value = redis_cache.count("hits", 2)
            with lock:
                counts.append(value)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 201))  # atomic: no count lost or given twice
    key = redis_cache.make_and_validate_key("hits")
    assert 0 < redis.Redis.from_url(REDIS_URL).ttl(key) <= 2  # never a counter without expiry
    time.sleep(2.1)
    assert redis_cache.count("hits", 2) == 1
