"""What the API's per-user cap costs a request, side by side in one run.

    python -m benchmarks.throttle [--requests 2000] [--runs 5] [--cache-url redis://127.0.0.1:6379/13]

Times, per request and against the same Redis: `config.throttling.UserRateThrottle.allow_request`
(counts in memory, one round trip per 1% of the rate), one round trip of the shared counter
(`config.cache.hit`: what every request paid before 2026-12-02 15:00) and DRF's own
UserRateThrottle (a list of timestamps read and written back: what it paid before 2026-12-01).
The rate is set high enough that nothing is refused. Prints medians over the runs and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable


def _per_call_us(call: Callable[[], object], requests: int, runs: int) -> float:
    timings = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(requests):
            call()
        timings.append((time.perf_counter() - t0) / requests * 1e6)
    return statistics.median(timings)


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args(argv)
    os.environ["CACHE_URL"] = args.cache_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.cache import cache
    from rest_framework import throttling

    from config.cache import hit
    from config.throttling import UserRateThrottle

    class User:
        is_authenticated = True
        pk = 424242

    class Request:
        user = User()

    rate = f"{args.requests * args.runs * 10}/min"  # never refuses

    def throttle(cls: type) -> Callable[[], object]:
        instance = cls()
        instance.rate = rate
        instance.num_requests, instance.duration = instance.parse_rate(rate)
        return lambda: instance.allow_request(Request(), None)

    result = {
        "batched_us": _per_call_us(throttle(UserRateThrottle), args.requests, args.runs),
        "one_round_trip_us": _per_call_us(
            lambda: hit(cache, "bench-throttle-counter", 60), args.requests, args.runs
        ),
        # DRF's keeps every request's time of the window: fewer requests, or it grows past the
        # default rate's 6,000 entries and measures something no one runs
        "drf_us": _per_call_us(
            throttle(throttling.UserRateThrottle), min(args.requests, 1000), args.runs
        ),
    }
    cache.delete_many(["bench-throttle-counter", "throttle_user_424242"])
    for name, value in result.items():
        print(f"{name:>18}: {value:8.1f} us a request")
    print(json.dumps({"benchmark": "throttle", **{k: round(v, 1) for k, v in result.items()}}))
    return result


if __name__ == "__main__":
    main()
