"""Django's Redis cache, with one client object per connection pool instead of one per call.

`django.core.cache.backends.redis.RedisCacheClient.get_client` builds a new `redis.Redis` for
every cache operation, and redis-py 5+ fills a table of some 170 response callbacks in each
constructor: about 90 us, against a 120 us round trip, on every session read and every throttle
check (issue 16, measured in docs/benchmarks.md). A `redis.Redis` is safe to share between
threads (its pool hands out connections, and resets itself in a forked child), so each pool's
client is made once.
"""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient as DjangoRedisCacheClient


class RedisCacheClient(DjangoRedisCacheClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(id(pool), self._client(connection_pool=pool))
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def count(self, key: Any, timeout: int, version: int | None = None, amount: int = 1) -> int:
        """Add `amount` to the counter `key` (made at 0 with this expiry when missing) and return
        it: SET NX EX and INCRBY in one MULTI/EXEC, so one round trip, and the counter cannot
        outlive its expiry (an INCR after the key expired would make it without one)."""
        key = self.make_and_validate_key(key, version=version)
        client = self._cache.get_client(key, write=True)
        with client.pipeline(transaction=True) as pipe:
            pipe.set(key, 0, ex=max(1, int(timeout)), nx=True)
            pipe.incrby(key, amount)
            return int(pipe.execute()[1])


def hit(cache: Any, key: str, timeout: int, amount: int = 1) -> int:
    """`amount` more hits on the counter `key` of `cache` (a fixed window: it expires `timeout`
    seconds after its first hit), atomically; the new count. On `RedisCache` one round trip
    (`count`); on another backend `add()` starts the window and `incr()` keeps its expiry. Used by
    the log-in throttle (config/login_throttle.py) and the API's per-user cap
    (config/throttling.py)."""
    counter = getattr(cache, "count", None)
    if counter is not None:
        return int(counter(key, timeout, amount=amount))
    cache.add(key, 0, timeout)
    try:
        return int(cache.incr(key, amount))
    except ValueError:  # expired between add() and incr()
        cache.set(key, amount, timeout)
        return amount
