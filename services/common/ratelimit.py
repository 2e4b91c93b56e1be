"""Token-bucket rate limits per key (an API key, a client address), shared by every service that
limits callers: media's /offer and /config.json, the orchestrator's Interviews API.

Each key has a bucket of `burst` tokens refilled at `rate_per_s`; a request spends one. Memory is
bounded: past `max_keys` buckets the least recently used one is forgotten (it comes back full,
which only ever favours a caller that has been quiet the longest).
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    """`rate_per_s` requests per second per key with bursts of `burst`; rate 0 = no limit."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.rate = rate_per_s
        self.burst = float(max(1, burst))
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, at)

    def take(self, key: str) -> float:
        """0 if allowed (a token is spent), else the seconds until the next request is allowed."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1 - tokens) / self.rate
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """Whole seconds for a Retry-After header / `retry-after` metadata (at least 1)."""
        return str(max(1, math.ceil(wait_s)))
