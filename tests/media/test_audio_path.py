"""Unit checks of media's audio path that the end-to-end tests cannot pin down: the uplink's
framing and latency, the resampler's thread use, and the agent's voice through media's own Opus encoder."""
from __future__ import annotations

import asyncio
import fractions
import os
import queue
import threading

import av
import numpy as np
import pytest
import soxr
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from services.common.audio import Resampler, read_wav, resample
from services.media.inline_decode import _LoopDecoder
from services.media.opus_out import WARM_SILENT_FRAMES, OpusOut
from services.media.uplink import CHUNK, UP_RATE, Uplink
from tests.load.harness import FIXTURES
from tests.media.helpers import transcribe
from tests.support.wer import wer


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


def test_agent_voice_survives_opus_out_and_quiet_frames_are_not_encoded() -> None:
    """What the browser decodes of OpusOut's packets (libopus, stereo output as Chromium asks for)
    is the same speech before and after a long quiet stretch, the quiet stretch decodes to silence,
    and past the warm-up quiet frames cost no encoding."""
    speech = read_wav(FIXTURES / "goforward_16k.wav", 48000)[0]
    speech = speech[:len(speech) // 960 * 960]
    quiet = np.zeros(960 * 100, np.int16)  # 2 s of an idle agent
    signal = np.concatenate([speech, quiet, speech, quiet[:960 * 20]])
    out = OpusOut()
    decoder = av.CodecContext.create("libopus", "r")
    decoder.format, decoder.layout, decoder.sample_rate = "s16", "stereo", 48000
    decoded, pts = [], 0
    for i in range(0, len(signal), 960):
        packet = out.packet(signal[i:i + 960], pts)
        assert packet.pts == pts and packet.time_base == fractions.Fraction(1, 48000)
        for frame in decoder.decode(av.Packet(bytes(packet))):
            decoded.append(frame.to_ndarray().reshape(-1, 2)[:, 0])
        pts += 960
    heard = np.concatenate(decoded)
    assert len(heard) == len(signal)
    n = len(speech)
    first, second = resample(heard[:n + 4800], 48000, 16000), resample(heard[n + len(quiet):2 * n + len(quiet) + 4800], 48000, 16000)
    text = transcribe(resample(speech, 48000, 16000), 16000)
    assert text and wer(text, transcribe(first, 16000)) <= 0.1 and wer(text, transcribe(second, 16000)) <= 0.1
    assert np.abs(heard[n + 4800:n + len(quiet)]).max() <= 2  # quiet decodes to silence
    quiet_frames = (len(quiet) + 20 * 960) // 960
    assert out.encoded == len(signal) // 960 - quiet_frames + 2 * WARM_SILENT_FRAMES


async def test_loop_decoder_drops_an_undecodable_frame_and_keeps_decoding() -> None:
    """media's on-loop Opus decoder (inline_decode): garbage is dropped with a warning and the
    receiver's decode-error flag, as aiortc's thread does; the next good packet still decodes."""
    codec = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
    good = bytes(OpusOut().packet(speech_48k()[:960], 0))
    out: asyncio.Queue = asyncio.Queue()
    error = threading.Event()
    decoder = _LoopDecoder(out, error, queue.Queue())
    decoder.put((codec, JitterFrame(data=b"\xff\xff\xff", timestamp=0)))
    assert out.empty() and error.is_set() and decoder.decoded == 0
    decoder.put((codec, JitterFrame(data=good, timestamp=960)))
    frame = out.get_nowait()
    assert frame.samples == 960 and frame.sample_rate == 48000 and decoder.decoded == 1
