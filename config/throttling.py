"""The API's per-user cap (settings: REST_FRAMEWORK's DEFAULT_THROTTLE_RATES["user"]), counted in
one cache round trip.

DRF's UserRateThrottle keeps every request's time of the last minute in one cache entry (up to
6,000 floats at our rate), read, unpickled, filtered, pickled and written back on every request:
two round trips and some 0.4 ms on the labelling page's hottest request (issue 16). This one
counts requests per fixed window (a counter per user and window, `config.cache.hit`: on Redis
one round trip), so a client can at most send twice the rate across a window's edge:
the cap stops a runaway script, it is not a quota.
"""

from __future__ import annotations

from typing import Any

from rest_framework import throttling

from config.cache import hit


class UserRateThrottle(throttling.UserRateThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        hits = hit(self.cache, f"{key}:{window}", self.duration)
        return hits <= self.num_requests

    def wait(self) -> float:
        """Seconds until the current window ends (the Retry-After header)."""
        return self.duration - (self.now % self.duration)
