"""An injectable clock, so timers (90 s check-ins, deadlines, breaker cool-downs) are testable in
milliseconds. Production code takes a `Clock` and never calls time/asyncio.sleep directly."""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def monotonic(self) -> float: ...
    def time(self) -> float: ...
    async def sleep(self, seconds: float) -> None: ...
    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return asyncio.get_running_loop().call_later(delay, callback)


class _FakeTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """Time moves only when a test calls `advance`; due timers and sleepers fire in order."""

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_700_000_000.0):
        self._now = start
        self._wall_offset = wall_start - start
        self._heap: list[tuple[float, int, _FakeTimer, Callable[[], object]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self._now

    def time(self) -> float:
        return self._now + self._wall_offset

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        timer = _FakeTimer()
        heapq.heappush(self._heap, (self._now + max(0.0, delay), next(self._seq), timer, callback))
        return timer

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        timer = self.call_later(seconds, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            timer.cancel()

    async def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order and letting woken tasks run."""
        target = self._now + seconds
        await _settle()
        while self._heap and self._heap[0][0] <= target:
            when, _, timer, callback = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not timer.cancelled:
                callback()
                await _settle()
        self._now = target
        await _settle()


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)
