"""Candidate audio in: decoded Opus frames (48 kHz, usually packed stereo) -> 16 kHz mono s16 ->
exact 32 ms chunks (512 samples, one Silero window) with stream offsets.

The conversion runs inline on the event loop: aiortc already decodes Opus in its own thread, and
downmix + resampling of one 20 ms frame in libswresample costs ~30 µs (less than an executor hop).
"""
from __future__ import annotations

import av

from services.common.audio import Rebuffer, Resampler

UP_RATE = 16000
CHUNK = 512  # 32 ms at 16 kHz


class Uplink:
    """Stateful converter for one inbound track (resampler and window state persist across frames)."""

    def __init__(self) -> None:
        self._resampler: Resampler | None = None
        self._in_rate = 0
        self._rebuffer = Rebuffer(CHUNK)
        self.offset = 0  # samples (16 kHz) produced so far: the upstream timeline

    def push(self, frame: av.AudioFrame) -> list[tuple[int, bytes]]:
        """(offset, pcm) chunks completed by this frame."""
        if self._resampler is None or frame.sample_rate != self._in_rate:
            self._in_rate = frame.sample_rate
            self._resampler = Resampler(frame.sample_rate, UP_RATE)
        samples = self._resampler.process_frame(frame)
        windows = self._rebuffer.push(samples, self.offset)
        self.offset += len(samples)
        return [(w.offset, w.samples.tobytes()) for w in windows]
