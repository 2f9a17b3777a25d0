"""Token buckets for ThingsBoard's ``count:seconds`` rate limits.

The server refills each bucket continuously (bucket4j, greedy refill), so a
bucket of ``count`` tokens refilled at ``count / seconds`` per second matches
what it enforces. A sink asks how long to wait before a publish and waits:
under a limit the outbox holds the events, nothing is dropped.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterable


class _Bucket:
    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate  # tokens per second
        self.tokens = float(capacity)
        self.last = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
        self.last = now


class RateLimit:
    """All of a limit's windows at once: a take must fit every bucket."""

    def __init__(
        self,
        limits: Iterable[tuple[int, float]],
        share: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        now = clock()
        self._buckets = []
        for count, seconds in limits:
            # a share of the stated limit leaves room for clock skew and the
            # server's own accounting (the official clients use 80%)
            capacity = max(1, math.floor(count * share))
            self._buckets.append(_Bucket(capacity, capacity / seconds, now))

    @property
    def capacity(self) -> int | None:
        """The most one take can ever get (None: unlimited)."""
        return min((b.capacity for b in self._buckets), default=None)

    def wait_s(self, n: int = 1) -> float:
        """Seconds until ``n`` tokens are available in every bucket (0: now)."""
        now = self._clock()
        wait = 0.0
        for b in self._buckets:
            b.refill(now)
            need = min(n, b.capacity) - b.tokens
            if need > 0:
                wait = max(wait, need / b.rate)
        return wait

    def take(self, n: int = 1) -> None:
        now = self._clock()
        for b in self._buckets:
            b.refill(now)
            b.tokens -= min(n, b.capacity)


async def acquire(costs: Iterable[tuple[RateLimit, int]]) -> float:
    """Waits until every limit has its cost in tokens, then takes them; returns the time waited."""
    chosen = list(costs)
    waited = 0.0
    while True:
        wait = max((lim.wait_s(n) for lim, n in chosen), default=0.0)
        if wait <= 0:
            break
        await asyncio.sleep(wait)
        waited += wait
    for lim, n in chosen:
        lim.take(n)
    return waited
