"""Per-process batching of Silero windows across every open stream.

Streams submit (their model state, one window) and await the probability. A collector takes what
is pending, waits for more only while it could still come (fewer windows than open streams: a
stream has at most one window in flight) and never longer than `max_wait_s` after the oldest
pending window arrived, then runs ONE onnxruntime call for the batch on a single worker thread
(onnxruntime releases the GIL, so the event loop keeps serving gRPC meanwhile).

The pending list is bounded (`max_pending`): when it is full, `infer` waits, so a stream stops
reading its request stream and gRPC flow control pushes back on the sender.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from services.vad.model import STATE_SHAPE, SileroModel, StreamState

log = logging.getLogger("vad.batcher")


class InferenceUnavailable(RuntimeError):
    """A window could not be scored: the batcher is shutting down or the model call failed."""


@dataclass
class _Job:
    stream: StreamState
    window: np.ndarray
    future: asyncio.Future[float]
    arrived: float


class Batcher:
    def __init__(self, model: SileroModel, max_batch: int = 64, max_wait_s: float = 0.005, max_pending: int = 4096):
        self.model = model
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._pending: deque[_Job] = deque()
        self._space = asyncio.Semaphore(max_pending)
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vad-onnx")
        self._task: asyncio.Task[None] | None = None
        self.open_streams = 0
        self.batches = 0
        self.windows = 0

    async def start(self) -> None:
        """Warm the session up (the first call is slow) and start the collector."""
        loop = asyncio.get_running_loop()
        warm = StreamState(16000)
        await loop.run_in_executor(self._executor, self.model.step, warm, np.zeros(512, dtype=np.int16))
        self._task = asyncio.create_task(self._collect(), name="vad-batcher")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(InferenceUnavailable("the VAD is shutting down"))
        self._executor.shutdown(wait=True)
        log.info("batcher stopped", extra={"windows": self.windows, "batches": self.batches,
                                           "mean_batch": round(self.windows / max(1, self.batches), 1)})

    def stream_opened(self) -> None:
        self.open_streams += 1

    def stream_closed(self) -> None:
        self.open_streams -= 1

    async def infer(self, stream: StreamState, window: np.ndarray) -> float:
        """Speech probability of `window` (int16) for `stream`, whose state is updated in place.

        One window per stream at a time: the caller awaits each before submitting the next."""
        if self._task is None:
            raise InferenceUnavailable("the VAD is not running (batcher not started or already closed)")
        await self._space.acquire()
        loop = asyncio.get_running_loop()
        job = _Job(stream, window, loop.create_future(), loop.time())
        self._pending.append(job)
        self._wakeup.set()
        return await job.future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            if not self._pending:
                self._wakeup.clear()
                continue
            deadline = self._pending[0].arrived + self.max_wait_s
            while len(self._pending) < min(self.max_batch, self.open_streams):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(remaining):
                        await self._wakeup.wait()
                except TimeoutError:
                    break
            n = min(self.max_batch, len(self._pending))
            jobs = [self._pending.popleft() for _ in range(n)]
            for _ in jobs:
                self._space.release()
            if not self._pending:
                self._wakeup.clear()
            try:
                probs = await loop.run_in_executor(self._executor, self._run, jobs)
            except Exception as exc:  # a failed call fails its windows' streams, not the service
                log.exception("inference failed", extra={"batch": len(jobs)})
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(InferenceUnavailable(f"VAD inference failed: {exc}"))
                continue
            self.batches += 1
            self.windows += len(jobs)
            for job, p in zip(jobs, probs):
                if not job.future.done():  # the stream may have been cancelled meanwhile
                    job.future.set_result(p)

    def _run(self, jobs: list[_Job]) -> list[float]:
        """Worker thread: one model call per sample rate present (almost always exactly one)."""
        if all(job.stream.rate == jobs[0].stream.rate for job in jobs):
            return self._run_rate(jobs)
        probs: dict[int, float] = {}
        for rate in {job.stream.rate for job in jobs}:
            group = [job for job in jobs if job.stream.rate == rate]
            probs.update(zip(map(id, group), self._run_rate(group)))
        return [probs[id(job)] for job in jobs]

    def _run_rate(self, jobs: list[_Job]) -> list[float]:
        first = jobs[0].stream
        rate, ctx, win = first.rate, len(first.context), len(jobs[0].window)
        inputs = np.empty((len(jobs), ctx + win), dtype=np.float32)
        states = np.empty((2, len(jobs), STATE_SHAPE[1]), dtype=np.float32)
        for row, job in enumerate(jobs):
            inputs[row, :ctx] = job.stream.context
            inputs[row, ctx:] = job.window
            states[:, row] = job.stream.state
        inputs[:, ctx:] *= 1.0 / 32768.0  # the scaling StreamState.model_input applies
        out, new_states = self.model.run(rate, inputs, states)
        for row, job in enumerate(jobs):
            job.stream.state = new_states[:, row]
            job.stream.context = inputs[row, -ctx:]
        return out.tolist()
