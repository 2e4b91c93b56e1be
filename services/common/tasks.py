"""Task ownership: every background task has one owner that starts it once and stops it with
cancel-and-wait, and every "queue drained by one consumer" loop uses the same bounded queue.

`OwnedTask` replaces the hand-written `_task` start/stop pairs; `WorkQueue` replaces the "queue
plus sentinel" loops: `close()` ends the consumer's iteration after what is already queued
(no sentinel object in the item type), and `put` waits while the queue is full (back-pressure).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, Generic, TypeVar

log = logging.getLogger("tasks")

T = TypeVar("T")


def raise_if_cancelling() -> None:
    """Call in a retry loop (each turn, and in the `except` for a library's own errors): redis-py
    (8.x) can swallow a cancellation (the call returns normally, or raises a ConnectionError), and
    a loop that goes on would never stop: its owner's cancel-and-wait hangs (seen: a live session
    ended by EndInterview never finished its shutdown). Honour the pending cancellation instead."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has finished; its own exception is logged, not raised."""
    if task is None or task.done() and task.cancelled():
        return
    task.cancel()
    results = await asyncio.gather(task, return_exceptions=True)
    exc = results[0]
    if isinstance(exc, Exception):
        log.warning("task %s failed before it was stopped: %r", task.get_name(), exc)


class OwnedTask:
    """One background coroutine, started at most once at a time, stopped by its owner."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]], name: str):
        self._run, self.name = run, name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    def start(self) -> None:
        """Start the coroutine (no-op while it runs)."""
        if not self.running:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Cancel it and wait for it to finish."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def __aenter__(self) -> "OwnedTask":
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class QueueClosed(Exception):
    """`put` on a WorkQueue after `close`."""


_CLOSED = object()


class WorkQueue(Generic[T]):
    """A bounded FIFO drained by one consumer with `async for`; `close()` ends the iteration once
    the items queued before it are consumed. Producers must not still be waiting in `put` when
    the owner closes it (the owner stops them first)."""

    def __init__(self, maxsize: int):
        if maxsize <= 0:
            raise ValueError("a WorkQueue is bounded: maxsize must be > 0")
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def qsize(self) -> int:
        return self._queue.qsize() - (1 if self._closed and self._marker_queued() else 0)

    def full(self) -> bool:
        return self._queue.full()

    async def put(self, item: T) -> None:
        """Enqueue, waiting while full (back-pressure)."""
        self._check_open()
        await self._queue.put(item)

    def put_nowait(self, item: T) -> None:
        """Enqueue or raise asyncio.QueueFull: for producers that must never wait."""
        self._check_open()
        self._queue.put_nowait(item)

    def close(self) -> None:
        """No more items; the consumer finishes what is queued, then its loop ends."""
        if not self._closed:
            self._closed = True
            if self._queue.empty():  # wake a consumer waiting in get()
                self._queue.put_nowait(_CLOSED)

    def drop_pending(self) -> list[T]:
        """Remove and return what is queued and not yet consumed."""
        items = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not _CLOSED:
                items.append(item)
        if self._closed:
            self._queue.put_nowait(_CLOSED)
        return items

    async def get(self) -> T:
        """The next item; raises QueueClosed once closed and drained."""
        if self._closed and self._queue.empty():
            raise QueueClosed
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # later gets see the end too
            raise QueueClosed
        return item

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            try:
                yield await self.get()
            except QueueClosed:
                return

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosed("the queue is closed")

    def _marker_queued(self) -> bool:
        return any(i is _CLOSED for i in self._queue._queue)  # type: ignore[attr-defined]
