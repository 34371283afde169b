"""The API's per-user cap (settings: REST_FRAMEWORK's DEFAULT_THROTTLE_RATES["user"]), counted in
batches: most requests make no cache round trip at all.

DRF's UserRateThrottle keeps every request's time of the last minute in one cache entry (up to
6,000 floats at our rate), read, unpickled, filtered, pickled and written back on every request:
two round trips and some 0.4 ms on the labelling page's hottest request (issue 16). This one
counts requests per fixed window (a counter per user and window, `config.cache.hit`: on Redis
one round trip), so a client can at most send twice the rate across a window's edge.

Each process also counts a user's requests of the window in memory and adds them to the shared
counter in batches of `batch_size` (1% of the rate; 1 below 200 a window, so a small rate is
exact): a user's first request of a window in a process, and then every `batch_size`-th, make the
round trip; the others are decided from the last shared count plus the process's own count since.
Each process can so admit at most `batch_size - 1` requests the other processes have not heard
of: with the default 6,000 a minute and 8 workers, at most 8 x 59 = 472 (8%) over the rate in a
window. The cap stops a runaway script; it is not a quota.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from rest_framework import throttling

from config.cache import hit

# key -> [requests counted here and not yet added to the shared counter, shared count], for the
# current window (`_window`) only
_Entry = list[int]


class UserRateThrottle(throttling.UserRateThrottle):
    _counts: ClassVar[dict[str, _Entry]] = {}
    _window: ClassVar[int] = -1
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def batch_size(self) -> int:
        """Requests a process counts in memory per round trip: 1% of the rate (at least 1)."""
        return max(1, self.num_requests // 100)

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        cls = type(self)
        with cls._lock:
            if window > cls._window:  # a new window: the last one's counts are done with
                cls._counts = {}
                cls._window = window
            # (a thread that read the clock before the window turned counts its request
            # straight into the old window's shared counter, and keeps nothing)
            entry = cls._counts.get(key) if window == cls._window else None
            if entry is not None and entry[0] + 1 < self.batch_size():
                entry[0] += 1
                return entry[1] + entry[0] <= self.num_requests
            pending = 1
            if entry is not None:
                pending += entry[0]
                # taken out of the count while the round trip is under way (a request of
                # another thread meanwhile makes its own)
                del cls._counts[key]
        shared = hit(self.cache, f"{key}:{window}", self.duration, pending)
        with cls._lock:
            if cls._window == window:
                cls._counts[key] = [0, shared]
        return shared <= self.num_requests

    def wait(self) -> float:
        """Seconds until the current window ends (the Retry-After header)."""
        return self.duration - (self.now % self.duration)
