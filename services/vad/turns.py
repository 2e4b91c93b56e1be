"""Turn scoring: once per pause inside speech, is the speaker's turn complete? (Smart Turn v3.2)

Per stream a TurnTracker keeps the last 8 s of audio and follows pauses on the same window
probabilities and thresholds as the Detector: a pause starts at a window below the deactivation
threshold after speech, ends at a window at or above activation. When a pause has lasted
`turn_pause_ms` (and turn scoring is on) the tracker hands out one TurnJob: a snapshot of the audio
up to that point. A pause is scored once; speech re-arms the tracker. Pauses are followed whether
scoring is on or not, so switching it on mid-pause scores that pause at the next window.

The process-wide TurnScorer batches the jobs of all streams into ONE model call, on its own worker
thread (the Silero batcher keeps its thread): features (numpy) and ONNX both run off the event
loop. Scores are rare (one per pause per stream) and each call takes tens of ms, so the collector
waits at most `max_wait_s` for company, and whatever arrives while a call runs forms the next batch.
The pending queue is bounded: when full a pause is not scored (the caller gets an in-band Problem)
rather than slowing Silero down: a late turn score is worthless.
"""
from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass

import numpy as np

from services.common.audio import resample
from services.common import metrics
from services.vad.batching import MicroBatcher
from services.vad.detector import Params
from services.vad.turn_model import RATE as MODEL_RATE
from services.vad.turn_model import SECONDS, SmartTurnModel, TurnModelMissing

log = logging.getLogger("vad.turns")


class TurnScoringUnavailable(RuntimeError):
    """A pause could not be scored (no model, overloaded, shutting down, or the call failed)."""


@dataclass(frozen=True)
class TurnJob:
    audio: np.ndarray      # int16, the stream's last <= 8 s up to decided_at, at the stream's rate
    rate: int
    pause_start: int       # samples, caller's timeline: end of speech
    decided_at: int        # end of the audio scored


class TurnTracker:
    """One stream's audio ring (8 s) and pause state; see the module docstring."""

    def __init__(self, rate: int):
        self.rate = rate
        self._ring = np.zeros(rate * SECONDS, dtype=np.int16)
        self._filled = 0        # valid samples in the ring (<= its size)
        self._pos = 0           # next write position
        self._end: int | None = None  # stream offset just after the last sample held
        self._voiced = False    # speech since the last scored pause
        self.pause_start: int | None = None

    def push(self, samples: np.ndarray, offset: int) -> None:
        """Append a window; a gap in the timeline is held as silence (capped at the ring size)."""
        if self._end is not None and offset > self._end:
            self._write(np.zeros(min(offset - self._end, len(self._ring)), dtype=np.int16))
        self._write(samples)
        self._end = offset + len(samples)

    def _write(self, x: np.ndarray) -> None:
        size = len(self._ring)
        if len(x) >= size:
            self._ring[:] = x[-size:]
            self._pos, self._filled = 0, size
            return
        first = min(len(x), size - self._pos)
        self._ring[self._pos:self._pos + first] = x[:first]
        self._ring[:len(x) - first] = x[first:]
        self._pos = (self._pos + len(x)) % size
        self._filled = min(size, self._filled + len(x))

    def snapshot(self) -> np.ndarray:
        """The held audio in time order (a copy)."""
        if self._filled < len(self._ring):
            return self._ring[:self._filled].copy()
        return np.concatenate([self._ring[self._pos:], self._ring[:self._pos]])

    def observe(self, start: int, end: int, probability: float, speaking: bool, params: Params) -> TurnJob | None:
        """After the Detector processed window [start, end): a TurnJob when a pause is due."""
        if probability >= params.activation_threshold:
            self.pause_start = None
            if speaking:
                self._voiced = True
        elif probability < params.deactivation_threshold and self._voiced and self.pause_start is None:
            self.pause_start = start
        if (params.turn_scoring and self.pause_start is not None
                and end - self.pause_start >= params.turn_pause_ms * self.rate // 1000):
            job = TurnJob(self.snapshot(), self.rate, self.pause_start, end)
            self._voiced, self.pause_start = False, None
            return job
        return None


def model_audio(job: TurnJob) -> np.ndarray:
    """The job's audio at the model's 16 kHz (8 kHz streams are resampled)."""
    return job.audio if job.rate == MODEL_RATE else resample(job.audio, job.rate, MODEL_RATE)


def score_jobs(model: SmartTurnModel, jobs: list[TurnJob]) -> list[float]:
    """Turn probabilities of `jobs` in one model call (what the service's worker thread and the CLI run)."""
    return model.score([model_audio(job) for job in jobs])


def _lower_priority(nice: int) -> None:
    """Worker thread start: run the turn model at a lower CPU priority than the Silero thread and
    the event loop (Linux niceness is per thread), so a busy core delays turn scores, not speech
    events."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + nice)
    except (OSError, AttributeError):  # not Linux, or not allowed: equal priority
        log.info("turn scoring thread runs at normal priority")


class TurnScorer:
    """Process-wide batcher of turn jobs (see the module docstring). `available` is False when the
    model file is missing: the service still starts, with turn scoring off (`reason` says why)."""

    def __init__(self, model: SmartTurnModel | None, reason: str = "", max_batch: int = 16,
                 max_wait_s: float = 0.005, max_pending: int = 256, nice: int = 5):
        self.model = model
        self.nice = nice
        self.reason = reason
        self.max_pending = max_pending
        self._batches: MicroBatcher[TurnJob, float] = MicroBatcher(
            "vad-turn", self._score, unavailable=TurnScoringUnavailable, max_batch=max_batch, max_wait_s=max_wait_s,
            max_pending=max_pending, thread_initializer=_lower_priority, initargs=(nice,),
            sizes=metrics.TURN_SCORE_BATCH_SIZE, seconds=metrics.TURN_SCORE_SECONDS)

    @property
    def calls(self) -> int:
        return self._batches.calls

    @property
    def scored(self) -> int:
        return self._batches.jobs

    @property
    def dropped(self) -> int:
        return self._batches.dropped

    @classmethod
    def load(cls, path: str = "", **kwargs: float) -> "TurnScorer":
        """The scorer with the model from `path` (default: the pipecat-ai package), or an
        unavailable one saying why."""
        from pathlib import Path

        try:
            if path and not Path(path).is_file():
                raise TurnModelMissing(f"VAD_TURN_MODEL={path} is not a file")
            return cls(SmartTurnModel(Path(path) if path else None), **kwargs)  # type: ignore[arg-type]
        except TurnModelMissing as exc:
            return cls(None, reason=str(exc), **kwargs)  # type: ignore[arg-type]

    @property
    def available(self) -> bool:
        return self.model is not None

    async def start(self) -> None:
        """Warm the session up (the first call is slow) and start the collector."""
        if self.model is None:
            return
        await self._batches.start(warm_up=[TurnJob(np.zeros(MODEL_RATE, dtype=np.int16), MODEL_RATE, 0, MODEL_RATE)])

    async def close(self) -> None:
        await self._batches.close("the VAD is shutting down")
        log.info("turn scorer stopped", extra={"scored": self.scored, "calls": self.calls, "dropped": self.dropped})

    def submit(self, job: TurnJob) -> asyncio.Future[float]:
        """A future for the job's probability; never blocks (a full queue fails the future)."""
        if not self._batches.running:
            future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
            future.set_exception(TurnScoringUnavailable(self.reason or "turn scoring is not running"))
            return future
        return self._batches.submit_nowait(
            job, f"turn scoring is overloaded ({self.max_pending} pauses waiting); this pause was not scored")

    def _score(self, jobs: list[TurnJob]) -> list[float]:
        assert self.model is not None  # started only with a model
        return score_jobs(self.model, jobs)
