"""Candidate audio in: decoded Opus frames (48 kHz, usually packed stereo) -> 16 kHz mono s16 ->
exact 32 ms chunks (512 samples, one Silero window) with stream offsets.

The conversion runs inline on the event loop: aiortc already decodes Opus in its own thread, and
downmix + soxr on one 20 ms frame costs ~30 µs (less than an executor hop would).
"""
from __future__ import annotations

import av
import numpy as np

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
        data = frame.to_ndarray()
        channels = len(frame.layout.channels)
        if frame.format.is_planar:
            mono = data.mean(axis=0) if data.shape[0] > 1 else data[0]
        else:
            mono = data.reshape(-1, channels).mean(axis=1) if channels > 1 else data.reshape(-1)
        if frame.format.name != "s16":
            raise ValueError(f"unexpected decoded audio format {frame.format.name}")
        if self._resampler is None or frame.sample_rate != self._in_rate:
            self._in_rate = frame.sample_rate
            self._resampler = Resampler(frame.sample_rate, UP_RATE)
        samples = self._resampler.process(np.asarray(mono).astype(np.int16))
        windows = self._rebuffer.push(samples, self.offset)
        self.offset += len(samples)
        return [(w.offset, w.samples.tobytes()) for w in windows]
