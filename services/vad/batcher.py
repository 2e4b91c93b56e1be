"""Per-process batching of Silero windows across every open stream.

Streams submit (their model state, one window) and await the probability; the collector
(services/vad/batching.py) waits for more only while it could still come (fewer windows than open
streams: a stream has at most one window in flight) and runs ONE onnxruntime call per batch.

The pending list is bounded (`max_pending`): when it is full, `infer` waits, so a stream stops
reading its request stream and gRPC flow control pushes back on the sender.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from services.common import metrics
from services.vad.batching import MicroBatcher
from services.vad.model import STATE_SHAPE, SileroModel, StreamState

log = logging.getLogger("vad.batcher")


class InferenceUnavailable(RuntimeError):
    """A window could not be scored: the batcher is shutting down or the model call failed."""


@dataclass
class _Job:
    stream: StreamState
    window: np.ndarray


class Batcher:
    """Silero windows of every stream, scored in batches (see the module docstring)."""

    def __init__(self, model: SileroModel, max_batch: int = 64, max_wait_s: float = 0.005, max_pending: int = 4096):
        self.model = model
        self.open_streams = 0
        self._batches: MicroBatcher[_Job, float] = MicroBatcher(
            "vad-onnx", self._run, unavailable=InferenceUnavailable, max_batch=max_batch, max_wait_s=max_wait_s,
            max_pending=max_pending, expected=lambda: self.open_streams,  # a stream has one window in flight
            sizes=metrics.VAD_BATCH_SIZE)

    @property
    def batches(self) -> int:
        return self._batches.calls

    @property
    def windows(self) -> int:
        return self._batches.jobs

    async def start(self) -> None:
        """Warm the session up (the first call is slow) and start the collector."""
        await self._batches.start(warm_up=[_Job(StreamState(16000), np.zeros(512, dtype=np.int16))])

    async def close(self) -> None:
        await self._batches.close("the VAD is shutting down")
        log.info("batcher stopped", extra={"windows": self.windows, "batches": self.batches,
                                           "mean_batch": round(self.windows / max(1, self.batches), 1)})

    def stream_opened(self) -> None:
        self.open_streams += 1

    def stream_closed(self) -> None:
        self.open_streams -= 1

    async def infer(self, stream: StreamState, window: np.ndarray) -> float:
        """Speech probability of `window` (int16) for `stream`, whose state is updated in place.

        One window per stream at a time: the caller awaits each before submitting the next."""
        return await self._batches.submit(_Job(stream, window))

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
