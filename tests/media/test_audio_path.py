"""Unit checks of media's audio path that the end-to-end tests cannot pin down: the uplink's
framing and latency, the resampler's thread use, and the vectorised RTP audio level."""
from __future__ import annotations

import os

import av
import numpy as np
import pytest
import soxr

from services.common.audio import Resampler, read_wav
from services.media.rtp_level import AIORTC_AUDIO_LEVEL, audio_level_dbov
from services.media.uplink import CHUNK, UP_RATE, Uplink
from tests.load.harness import FIXTURES


def speech_48k() -> np.ndarray:
    return read_wav(FIXTURES / "goforward_16k.wav", 48000)[0]


def frames_of(samples: np.ndarray, fmt: str, layout: str) -> list[av.AudioFrame]:
    """20 ms frames as aiortc's Opus decoder hands them over (packed s16 stereo) or planar float."""
    out = []
    for i in range(0, len(samples) - 960 + 1, 960):
        mono = samples[i:i + 960]
        if fmt == "s16":
            arr = np.repeat(mono, 2).reshape(1, -1) if layout == "stereo" else mono.reshape(1, -1)
        else:  # fltp: one plane per channel
            plane = (mono.astype(np.float32) / 32768.0).reshape(1, -1)
            arr = np.vstack([plane, plane]) if layout == "stereo" else plane
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr), format=fmt, layout=layout)
        frame.sample_rate = 48000
        out.append(frame)
    return out


@pytest.mark.parametrize(("fmt", "layout"), [("s16", "stereo"), ("s16", "mono"), ("fltp", "stereo")])
def test_uplink_gives_gapless_32ms_chunks_of_the_same_speech_without_delay(fmt: str, layout: str) -> None:
    samples = speech_48k()
    up = Uplink()
    chunks: list[tuple[int, bytes]] = []
    lag_ms = []
    for k, frame in enumerate(frames_of(samples, fmt, layout), start=1):
        chunks += up.push(frame)
        lag_ms.append(1000 * (k * 960 / 48000 - up.offset / UP_RATE))
    assert [off for off, _ in chunks] == [i * CHUNK for i in range(len(chunks))]
    assert all(len(pcm) == 2 * CHUNK for _, pcm in chunks)
    assert max(lag_ms[5:]) <= 2.0  # the resampler holds back ~1 ms, not soxr's ~20
    got = np.frombuffer(b"".join(pcm for _, pcm in chunks), "<i2").astype(np.float32)
    ref = soxr.resample(samples.astype(np.float32), 48000, UP_RATE, "VHQ")[:len(got)]
    snr = 10 * np.log10(np.mean(ref ** 2) / np.mean((ref - got) ** 2))
    assert snr >= 35, snr


def test_resamplers_start_no_threads() -> None:
    """av.AudioResampler starts a thread pool per instance; one media peer used to carry ~9 such threads."""
    before = len(os.listdir("/proc/self/task"))
    rs = [Resampler(16000, 48000) for _ in range(8)]
    for r in rs:
        r.process(np.ones(512, np.int16))
    assert len(os.listdir("/proc/self/task")) == before


@pytest.mark.parametrize("layout", ["stereo", "mono"])
def test_audio_level_equals_aiortcs_own(layout: str) -> None:
    samples = speech_48k()
    frames = frames_of(samples, "s16", layout)[::7]
    loud = np.full(960 * (2 if layout == "stereo" else 1), 32767, np.int16).reshape(1, -1)
    frames.append(av.AudioFrame.from_ndarray(loud, format="s16", layout=layout))
    frames.append(av.AudioFrame.from_ndarray(np.zeros_like(loud), format="s16", layout=layout))
    levels = [audio_level_dbov(f) for f in frames]
    assert AIORTC_AUDIO_LEVEL is not audio_level_dbov
    assert levels == [AIORTC_AUDIO_LEVEL(f) for f in frames]
    assert len(set(levels)) > 5  # speech, not a constant
