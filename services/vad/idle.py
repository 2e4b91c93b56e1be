"""Ends request streams that have been silent too long, so a forgotten stream frees its slot."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

from services.common.clock import Clock, Timer

T = TypeVar("T")


class IdleTimeout(Exception):
    def __init__(self, seconds: float):
        super().__init__(f"no message for {seconds:g} s")
        self.seconds = seconds


async def guard_idle(requests: AsyncIterable[T], timeout_s: float, clock: Clock) -> AsyncIterator[T]:
    """Yield `requests`; raise IdleTimeout if the caller sends nothing for `timeout_s`.

    One timer per stream, re-armed lazily (a message only stores a timestamp), so the cost per
    message is a clock read. The timer only interrupts a *wait for the next message*: time spent
    processing a message never counts as idle. The task cancelled is the one waiting for the
    message at that moment (a caller may read through a helper task, e.g. while also waiting for a
    turn score)."""
    task = asyncio.current_task()
    assert task is not None
    last = clock.monotonic()
    reading = False
    fired = False
    timer: Timer | None = None

    def check() -> None:
        nonlocal timer, fired
        now = clock.monotonic()
        if reading and now - last >= timeout_s:
            fired = True
            task.cancel()
            return
        timer = clock.call_later(max(last + timeout_s - now, 0.0) if reading else timeout_s, check)

    timer = clock.call_later(timeout_s, check)
    iterator = requests.__aiter__()
    try:
        while True:
            reading = True
            task = asyncio.current_task() or task
            try:
                request = await iterator.__anext__()
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if fired:
                    task.uncancel()
                    raise IdleTimeout(timeout_s) from None
                raise
            finally:
                reading = False
            last = clock.monotonic()
            yield request
    finally:
        if timer is not None:
            timer.cancel()
