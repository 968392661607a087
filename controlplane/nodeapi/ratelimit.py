"""Per-node token buckets, kept in the worker's memory (no extra round trip on the hot path).

Each worker process holds its own buckets, so with W workers a node may get up to W times the rate
in the worst case; the limit is there to stop a runaway node, not to meter exactly.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings


class TokenBuckets:
    def __init__(self, rate_per_min: int, burst: int | None = None, max_keys: int = 200_000):
        self.rate_per_min = rate_per_min
        self.rate = rate_per_min / 60.0
        self.burst = float(burst or max(rate_per_min // 2, 10))
        self.max_keys = max_keys
        self.buckets: dict[object, tuple[float, float]] = {}
        self.lock = threading.Lock()

    def take(self, key: object) -> float:
        """Spend one token; return 0 if allowed, else the seconds until one is available."""
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self.buckets[key] = (tokens - 1.0, now)
                if len(self.buckets) > self.max_keys:
                    self.buckets.clear()  # bounded memory; forgetting buckets only forgives
                return 0.0
            self.buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


_buckets: TokenBuckets | None = None


def buckets() -> TokenBuckets:
    """This worker's node buckets, at the configured rate (EDGEFLEET_NODE_RATE_PER_MIN)."""
    global _buckets
    rate = int(settings.EDGEFLEET["NODE_RATE_PER_MIN"])
    if _buckets is None or _buckets.rate_per_min != rate:
        _buckets = TokenBuckets(rate)
    return _buckets
