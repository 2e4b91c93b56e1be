"""Micro-batching of model calls across every open stream: the one collector loop behind the
Silero batcher (speech windows) and the turn scorer (Smart Turn pauses).

Streams submit jobs and await their futures. A collector takes what is pending, waits for more
only while more could still come (`expected()`: e.g. fewer windows than open streams) and never
longer than `max_wait_s` after the oldest pending job arrived, then runs ONE call for the batch on
its single worker thread (onnxruntime releases the GIL, so the event loop keeps serving gRPC).
A failed call fails that batch's futures with `unavailable(...)`, never the service.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from services.common.tasks import OwnedTask

log = logging.getLogger("vad.batching")

J = TypeVar("J")
R = TypeVar("R")


@dataclass
class _Pending(Generic[J, R]):
    job: J
    future: asyncio.Future[R]
    arrived: float
    holds_space: bool  # submitted with `submit` (took a slot of the semaphore)


class MicroBatcher(Generic[J, R]):
    """Bounded pending jobs → one `run_batch(jobs)` call per batch on one worker thread."""

    def __init__(self, name: str, run_batch: Callable[[list[J]], Sequence[R]], *,
                 unavailable: Callable[[str], Exception], max_batch: int, max_wait_s: float, max_pending: int,
                 expected: Callable[[], int] | None = None,
                 thread_initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = (),
                 sizes: Any = None, seconds: Any = None):
        """`sizes` / `seconds`: Prometheus histograms observing each call's batch size and duration."""
        self.name = name
        self.sizes, self.seconds = sizes, seconds
        self.run_batch = run_batch
        self.unavailable = unavailable
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_pending = max_pending
        self.expected = expected or (lambda: max_batch)
        self._thread = (thread_initializer, initargs)
        self._pending: deque[_Pending[J, R]] = deque()
        self._space = asyncio.Semaphore(max_pending)
        self._wakeup = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._collector = OwnedTask(self._collect, name=name)
        self.calls = 0
        self.jobs = 0
        self.dropped = 0

    @property
    def running(self) -> bool:
        return self._collector.running

    async def start(self, warm_up: list[J] | None = None) -> None:
        """Start the worker thread (running `warm_up` on it first: the first call is slow) and the collector."""
        initializer, initargs = self._thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name,
                                            initializer=initializer, initargs=initargs)
        if warm_up:
            await asyncio.get_running_loop().run_in_executor(self._executor, self.run_batch, warm_up)
        self._collector.start()

    async def close(self, reason: str) -> None:
        """Stop collecting; jobs still pending fail with `unavailable(reason)`."""
        await self._collector.stop()
        while self._pending:
            pending = self._pending.popleft()
            if not pending.future.done():
                pending.future.set_exception(self.unavailable(reason))
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, job: J) -> R:
        """The job's result; waits while `max_pending` jobs are pending (back-pressure on the stream)."""
        if not self.running:
            raise self.unavailable(f"{self.name} is not running (not started or already closed)")
        await self._space.acquire()
        return await self._enqueue(job, holds_space=True)

    def submit_nowait(self, job: J, overloaded: str) -> asyncio.Future[R]:
        """A future for the job's result; never waits: a full queue fails the future with
        `unavailable(overloaded)` and counts the job as dropped."""
        if not self.running or len(self._pending) >= self.max_pending:
            future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
            if self.running:
                self.dropped += 1
            future.set_exception(self.unavailable(overloaded if self.running else f"{self.name} is not running"))
            return future
        return self._enqueue(job, holds_space=False)

    def _enqueue(self, job: J, holds_space: bool) -> asyncio.Future[R]:
        loop = asyncio.get_running_loop()
        pending: _Pending[J, R] = _Pending(job, loop.create_future(), loop.time(), holds_space)
        self._pending.append(pending)
        self._wakeup.set()
        return pending.future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            if not self._pending:
                self._wakeup.clear()
                continue
            deadline = self._pending[0].arrived + self.max_wait_s
            while len(self._pending) < min(self.max_batch, self.expected()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._wakeup.wait()
                except TimeoutError:
                    break
            batch = [self._pending.popleft() for _ in range(min(self.max_batch, len(self._pending)))]
            for p in batch:
                if p.holds_space:
                    self._space.release()
            if not self._pending:
                self._wakeup.clear()
            batch = [p for p in batch if not p.future.done()]  # streams that went meanwhile
            if not batch:
                continue
            if self.sizes is not None:
                self.sizes.observe(len(batch))
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [p.job for p in batch])
            except Exception as exc:  # a failed call fails its jobs' streams, not the service
                log.exception("batch call failed", extra={"batcher": self.name, "batch": len(batch)})
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(self.unavailable(f"{self.name} failed: {exc}"))
                continue
            if self.seconds is not None:
                self.seconds.observe(time.perf_counter() - started)
            self.calls += 1
            self.jobs += len(batch)
            for p, result in zip(batch, results):
                if not p.future.done():  # the stream may have been cancelled meanwhile
                    p.future.set_result(result)
