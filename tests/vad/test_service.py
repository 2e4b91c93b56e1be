"""Vad.Detect end to end against the real service process (Silero ONNX, batched inference)."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import numpy as np

from interview.v1 import vad_pb2
from services.vad.cli import detect as reference_detect
from services.vad.detector import Params
from services.vad.model import SileroModel
from tests.vad.helpers import PHONE, SPEECH, detect, frame_agreement, load, requests

_model = SileroModel()


def reference(samples: np.ndarray, rate: int = 16000, **params) -> list[tuple[int, int, int]]:
    """Events of the same audio through one unbatched, in-process Silero session (the CLI path)."""
    kinds = {1: vad_pb2.SPEECH_STARTED, 2: vad_pb2.SPEECH_STOPPED}
    return [(kinds[e.kind.value], e.offset, e.decided_at)
            for e in reference_detect(samples, rate, Params().updated(**params), _model)]


async def test_phone_call_frames_agree_with_the_rttm_labels(channel):
    audio = load(PHONE.name)
    # 20 ms chunks (WebRTC framing): 320 samples, so the service must re-buffer into 512 windows
    result = await detect(channel, requests(audio, chunk=320))
    agreement = frame_agreement(result.events, PHONE.with_suffix(".rttm"), len(audio))
    assert agreement >= 0.98, f"{agreement:.4f} of 32 ms frames agree"
    assert result.pairs() == reference(audio)  # batched + re-buffered == one plain session


async def test_8khz_streams_use_256_sample_windows(channel):
    audio = load(PHONE.name, rate=8000)
    result = await detect(channel, requests(audio, rate=8000, chunk=160))
    assert result.pairs() == reference(audio, rate=8000)
    assert frame_agreement(result.events, PHONE.with_suffix(".rttm"), len(audio), rate=8000) >= 0.95


async def test_switching_min_silence_mid_stream_gives_the_events_of_a_stream_with_the_new_params(channel):
    """From the switch on, events equal those of a stream that had 3000 ms from its start (same
    audio, so the same model state: nothing was reset), and differ from staying at 1200 ms."""
    audio = load("lecture_60s_16k.wav")[:16000 * 20]
    switch = 156 * 512  # ~5.0 s, inside an utterance
    switched, fresh, stayed = await asyncio.gather(
        detect(channel, requests(audio, params={"min_silence_ms": 1200}, updates={switch: {"min_silence_ms": 3000}})),
        detect(channel, requests(audio, params={"min_silence_ms": 3000})),
        detect(channel, requests(audio, params={"min_silence_ms": 1200})))
    after = lambda r: [p for p in r.pairs() if p[2] > switch]  # noqa: E731
    assert after(switched) == after(fresh)
    assert after(switched) != after(stayed)  # the 2.4 s pause at 6.9 s ends an utterance only at 1200 ms
    [applied] = switched.applied
    assert applied.effective_from_samples == switch
    assert applied.params.min_silence_ms == 3000 and applied.params.activation_threshold == Params().activation_threshold


async def test_lowering_min_silence_during_a_longer_pause_stops_on_the_next_window(channel):
    rate = 16000
    speech = load("goforward_16k.wav")[:int(2.4 * rate)]  # speech ends ~2.3 s
    audio = np.concatenate([speech, np.zeros(2 * rate, np.int16), load("forever_16k.wav")])
    update_at = (len(speech) + rate) // 512 * 512  # ~1 s into the silence
    result = await detect(channel, requests(
        audio, params={"min_silence_ms": 3000}, updates={update_at: {"min_silence_ms": 500}}))
    short = reference(audio, min_silence_ms=500)
    stop = next(e for e in result.events if e.type == vad_pb2.SPEECH_STOPPED)
    assert stop.decided_at_samples == update_at + 512  # the next window
    stop_short = next(p for p in short if p[0] == vad_pb2.SPEECH_STOPPED)
    assert stop.offset_samples == stop_short[1]  # same place: where the pause began, plus pad
    assert stop_short[2] < stop.decided_at_samples  # at 500 ms from the start it would have come earlier


async def test_batched_results_equal_single_stream_results_bit_for_bit(channel):
    names = ["phone_call_2spk_16k.wav", "lecture_60s_16k.wav", "goforward_16k.wav", "forever_16k.wav"]
    clips = [load(n)[:16000 * 12] for n in names] * 3
    alone = [await detect(channel, requests(c, probabilities=True)) for c in clips[:4]]
    together = await asyncio.gather(*(detect(channel, requests(c, chunk=1024, probabilities=True)) for c in clips))
    for i, res in enumerate(together):
        assert res.probabilities == alone[i % 4].probabilities, names[i % 4]
        assert res.pairs() == alone[i % 4].pairs()


async def test_unset_params_take_server_defaults_and_probabilities_are_optional(channel):
    result = await detect(channel, requests(load("goforward_16k.wav")))
    assert result.probabilities == [] and len(result.events) == 2
    started = result.events[0]
    assert started.type == vad_pb2.SPEECH_STARTED and 0 < started.probability <= 1


async def test_cli_segments_print_what_the_service_detects(channel):
    out = subprocess.run([sys.executable, "-m", "services.vad", "segments", str(PHONE), "--min-silence-ms", "300",
                          "--threshold", "0.6"], capture_output=True, text=True, timeout=60, check=True)
    doc = json.loads(out.stdout)
    served = await detect(channel, requests(load(PHONE.name), params={
        "min_silence_ms": 300, "activation_threshold": 0.6, "deactivation_threshold": 0.45}))
    starts = [e.offset_samples for e in served.events if e.type == vad_pb2.SPEECH_STARTED]
    stops = [e.offset_samples for e in served.events if e.type == vad_pb2.SPEECH_STOPPED]
    assert doc["segments"] == [{"start": round(a / 16000, 3), "end": round(b / 16000, 3)} for a, b in zip(starts, stops)]
    assert doc["params"]["min_silence_ms"] == 300 and len(doc["segments"]) >= 2


def test_cli_rejects_bad_arguments_readably():
    out = subprocess.run([sys.executable, "-m", "services.vad", "segments", str(SPEECH / "missing.wav")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "No such file" in out.stderr
    out = subprocess.run([sys.executable, "-m", "services.vad", "segments", str(PHONE), "--threshold", "2"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "activation_threshold=2 is out of range" in out.stderr


async def test_a_gap_in_the_audio_keeps_offsets_on_the_callers_timeline(channel):
    """Gated audio: windows never straddle a gap, and events after it carry timeline offsets."""
    first, second = load("goforward_16k.wav"), load("forever_16k.wav")
    gap_at = 16000 * 100  # the second clip is sent as if it came 100 s into the stream
    reqs = requests(first, chunk=300)
    reqs += requests(second, chunk=300)[1:]  # no second config
    for r in reqs[len(requests(first, chunk=300)):]:
        r.audio.offset_samples += gap_at
    result = await detect(channel, reqs)
    offsets = [e.offset_samples for e in result.events]
    assert len(offsets) == 4 and offsets == sorted(offsets)
    assert offsets[1] <= len(first) and offsets[2] >= gap_at  # one utterance per clip, nothing in the gap


def test_contradictory_default_thresholds_stop_the_service_at_start_up():
    env = {**os.environ, "VAD_DEACTIVATION_THRESHOLD": "0.9", "VAD_PORT": "0", "OTEL_SDK_DISABLED": "true"}
    out = subprocess.run([sys.executable, "-m", "services.vad"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "VAD_DEACTIVATION_THRESHOLD: deactivation_threshold=0.9 is above activation_threshold=0.5" in out.stderr
