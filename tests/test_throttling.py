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
def fresh_counts(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[int]]:
    """The in-memory counts of one process, empty, and the shared counters cleared (a user id
    of an earlier test may come again, with its counts of this window)."""
    cache.clear()
    counts: dict[str, list[int]] = {}
    monkeypatch.setattr(UserRateThrottle, "_counts", counts)
    monkeypatch.setattr(UserRateThrottle, "_window", -1)
    yield counts
    cache.clear()


@pytest.fixture
def three_a_minute(fresh_counts: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "3/min"})


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


class _User:
    is_authenticated = True

    def __init__(self, pk: int) -> None:
        self.pk = pk


class _Request:
    def __init__(self, pk: int) -> None:
        self.user = _User(pk)


def _throttle(rate: str, now: float) -> UserRateThrottle:
    throttle = UserRateThrottle()
    throttle.rate = rate
    throttle.num_requests, throttle.duration = throttle.parse_rate(rate)
    throttle.timer = lambda: now  # type: ignore[method-assign]  # one window for the test
    return throttle


@pytest.fixture
def trips(fresh_counts: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per round trip to the shared counter, from empty in-memory counts."""
    import config.throttling

    made: list[int] = []
    hit = config.throttling.hit

    def counted_hit(*args: object, **kwargs: object) -> int:
        made.append(1)
        return hit(*args, **kwargs)

    monkeypatch.setattr(config.throttling, "hit", counted_hit)
    return made


def test_a_batching_rate_still_caps_one_process_at_exactly_the_rate(
    fresh_counts: dict[str, list[int]],
) -> None:
    throttle = _throttle("1000/min", now=6_000_000.0)  # batches of 10
    request = _Request(pk=7)
    allowed = [throttle.allow_request(request, None) for _ in range(1001)]
    assert allowed == [True] * 1000 + [False]
    # the shared counter heard of every request but the last batch's few
    shared = cache.get(f"{throttle.get_cache_key(request, None)}:{int(6_000_000 // 60)}")
    assert 1001 - 9 <= shared <= 1001


def test_processes_counting_in_batches_admit_at_most_a_batch_each_over_the_rate(
    fresh_counts: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    throttle = _throttle("1000/min", now=6_000_000.0)
    request = _Request(pk=8)
    processes: list[dict[str, list[int]]] = [{}, {}, {}]
    admitted = 0
    for n in range(1200):
        # each request served by one of three processes, each with its own memory
        monkeypatch.setattr(UserRateThrottle, "_counts", processes[n % 3])
        if throttle.allow_request(request, None):
            admitted += 1
    assert 1000 <= admitted <= 1000 + 3 * 9


def test_the_default_rate_makes_a_round_trip_per_sixty_requests_and_per_window(
    trips: list[int],
) -> None:
    throttle = _throttle("6000/min", now=6_000_000.0)  # the default rate: batches of 60
    assert all(throttle.allow_request(_Request(pk=9), None) for _ in range(60))
    assert len(trips) == 1  # the window's first request only
    assert all(throttle.allow_request(_Request(pk=9), None) for _ in range(61))
    assert len(trips) == 3  # then one each 60: the 61st and the 121st
    next_window = _throttle("6000/min", now=6_000_060.0)
    assert next_window.allow_request(_Request(pk=9), None)
    assert len(trips) == 4  # a new window starts with a round trip


def test_the_throttle_benchmark_runs_and_times_each_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import throttle

    monkeypatch.setenv("CACHE_URL", REDIS_URL)
    result = throttle.main(["--requests", "20", "--runs", "1", "--cache-url", REDIS_URL])
    assert set(result) == {"batched_us", "one_round_trip_us", "drf_us"}
    assert all(value > 0 for value in result.values())


def test_a_request_timed_before_the_window_turned_leaves_the_new_windows_counts_alone(
    trips: list[int],
) -> None:
    new, old = _throttle("6000/min", now=6_000_060.0), _throttle("6000/min", now=6_000_059.9)
    assert all(new.allow_request(_Request(pk=10), None) for _ in range(5))
    assert len(trips) == 1
    # another thread's request, its clock read just before the window turned
    assert old.allow_request(_Request(pk=10), None)
    assert len(trips) == 2  # counted into the old window's shared counter
    assert all(new.allow_request(_Request(pk=10), None) for _ in range(5))
    assert len(trips) == 2  # the new window's count in memory went on, no round trip
