"""Audio framing shared by every service: PCM s16le mono everywhere, fixed windows, resampling.

Resampling uses soxr (a real polyphase resampler, streaming so chunk boundaries leave no clicks).
"""
from __future__ import annotations

import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

BYTES_PER_SAMPLE = 2
DEFAULT_CHUNK_MS = 32  # 512 samples at 16 kHz: one Silero window


def samples_per_ms(rate: int, ms: float) -> int:
    return int(round(rate * ms / 1000))


def pcm_to_int16(pcm: bytes) -> np.ndarray:
    if len(pcm) % BYTES_PER_SAMPLE:
        raise ValueError(f"PCM s16le needs an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<i2")


def int16_to_float32(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 32768.0


def float32_to_pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


@dataclass
class Window:
    samples: np.ndarray  # int16, exactly `size` samples
    offset: int          # offset of samples[0] on the stream timeline


class Rebuffer:
    """Turns chunks of any size into exact fixed-size windows, tracking stream offsets.

    A chunk whose offset jumps ahead (a gap in gated audio) discards the partial window: windows
    never straddle a gap, so their offsets stay true.
    """

    def __init__(self, size: int):
        if size <= 0:
            raise ValueError("window size must be positive")
        self.size = size
        self._buf = np.zeros(0, dtype=np.int16)
        self._start: int | None = None  # stream offset of _buf[0]

    @property
    def pending(self) -> int:
        return len(self._buf)

    @property
    def next_offset(self) -> int | None:
        return None if self._start is None else self._start + len(self._buf)

    def push(self, samples: np.ndarray, offset: int | None = None) -> list[Window]:
        if offset is None:
            offset = self.next_offset or 0
        samples = samples.astype(np.int16, copy=False)
        if not len(self._buf):
            # Fast path (the common case of window-aligned chunks): windows are views of the
            # chunk, no concatenation; an empty buffer simply restarts at this offset.
            n = len(samples) // self.size
            windows = [Window(samples[i * self.size:(i + 1) * self.size], offset + i * self.size) for i in range(n)]
            self._buf = samples[n * self.size:].copy()
            self._start = offset + n * self.size
            return windows
        if self._start is None or offset != self._start + len(self._buf):
            self._buf = np.zeros(0, dtype=np.int16)
            self._start = offset
        self._buf = np.concatenate([self._buf, samples])
        out: list[Window] = []
        n = len(self._buf) // self.size
        for i in range(n):
            out.append(Window(self._buf[i * self.size:(i + 1) * self.size], self._start + i * self.size))
        if n:
            self._buf = self._buf[n * self.size:].copy()
            self._start += n * self.size
        return out


class Resampler:
    """Streaming int16 resampler (soxr). Same rate in and out is a no-op.

    Works in float32 internally: soxr's int16 streams add random dither, so the same input gave
    different output on every run (measured: 8 distinct results in 20 runs, 48 -> 16 kHz).
    """

    def __init__(self, in_rate: int, out_rate: int, quality: str = "HQ"):
        self.in_rate, self.out_rate = in_rate, out_rate
        self._rs = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._rs is None:
            return samples.astype(np.int16, copy=False)
        out = self._rs.resample_chunk(samples.astype(np.float32) / 32768.0, last=last)
        return np.clip(np.round(out * 32768.0), -32768, 32767).astype(np.int16)


def resample(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """One-shot resampling of a whole int16 signal."""
    if in_rate == out_rate:
        return samples.astype(np.int16, copy=False)
    return soxr.resample(samples.astype(np.int16, copy=False), in_rate, out_rate)


def read_wav(path: str | Path, rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read a PCM16 WAV as mono int16 (channels averaged), resampled to `rate` if given."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
        channels, in_rate = w.getnchannels(), w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if rate is not None and rate != in_rate:
        return resample(data, in_rate, rate), rate
    return data, in_rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())


def chunks(samples: np.ndarray, size: int) -> Iterator[tuple[int, np.ndarray]]:
    """(offset, chunk) pairs of at most `size` samples."""
    for start in range(0, len(samples), size):
        yield start, samples[start:start + size]


class PreRoll:
    """The most recent `capacity` samples with their stream offsets: the pre-roll sent to STT when
    VAD reports speech (SPEECH_STARTED arrives a little after the speech actually began)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._buf = np.zeros(0, dtype=np.int16)
        self._end = 0  # stream offset just after the last sample held

    def push(self, samples: np.ndarray, offset: int) -> None:
        if offset != self._end:  # a gap: what was held is not contiguous with this chunk
            self._buf = np.zeros(0, dtype=np.int16)
        self._buf = np.concatenate([self._buf, samples.astype(np.int16, copy=False)])[-self.capacity:]
        self._end = offset + len(samples)

    def since(self, offset: int) -> tuple[int, np.ndarray]:
        """(start offset, samples) held from `offset` (clamped to what is held) to the end."""
        start = max(offset, self._end - len(self._buf))
        return start, self._buf[len(self._buf) - (self._end - start):] if self._end > start else self._buf[:0]
