"""Clients and references for the VAD tests: stream real audio through Detect and compare."""
from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

import grpc
import numpy as np

from interview.v1 import common_pb2, vad_pb2, vad_pb2_grpc
from services.common.audio import read_wav

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
PHONE = SPEECH / "phone_call_2spk_16k.wav"


def load(name: str | Path, rate: int = 16000) -> np.ndarray:
    return read_wav(SPEECH / name, rate)[0]


@dataclass
class Result:
    events: list[vad_pb2.VadEvent] = field(default_factory=list)
    probabilities: list[float] = field(default_factory=list)
    applied: list[vad_pb2.VadParamsApplied] = field(default_factory=list)
    problems: list[Any] = field(default_factory=list)
    turns: list[vad_pb2.TurnScore] = field(default_factory=list)

    def pairs(self) -> list[tuple[int, int, int]]:
        return [(e.type, e.offset_samples, e.decided_at_samples) for e in self.events]




def requests(samples: np.ndarray, *, rate: int = 16000, chunk: int = 512, params: dict[str, Any] | None = None,
             updates: dict[int, dict[str, Any]] | None = None, probabilities: bool = False,
             ) -> list[vad_pb2.DetectRequest]:
    """config, then audio in `chunk`-sample chunks; `updates` maps a sample offset to a params
    update sent just before the chunk starting there (offsets must be chunk boundaries)."""
    reqs = [vad_pb2.DetectRequest(config=vad_pb2.VadConfig(
        sample_rate_hz=rate, params=common_pb2.VadParams(**(params or {})), emit_probabilities=probabilities))]
    updates = dict(updates or {})
    for start in range(0, len(samples), chunk):
        if start in updates:
            reqs.append(vad_pb2.DetectRequest(params=common_pb2.VadParams(**updates.pop(start))))
        reqs.append(vad_pb2.DetectRequest(audio=common_pb2.AudioChunk(
            pcm=samples[start:start + chunk].tobytes(), offset_samples=start)))
    assert not updates, f"update offsets not on chunk boundaries: {sorted(updates)}"
    return reqs


async def detect(channel: grpc.aio.Channel, reqs: Sequence[vad_pb2.DetectRequest], timeout: float = 60) -> Result:
    """Run one Detect stream to the end; raises grpc.aio.AioRpcError on a status other than OK."""
    async def gen() -> AsyncIterator[vad_pb2.DetectRequest]:
        for r in reqs:
            yield r

    out = Result()
    async for resp in vad_pb2_grpc.VadStub(channel).Detect(gen(), timeout=timeout):
        kind = resp.WhichOneof("msg")
        if kind == "event":
            out.events.append(resp.event)
        elif kind == "probability":
            out.probabilities.append(resp.probability.probability)
        elif kind == "params_applied":
            out.applied.append(resp.params_applied)
        elif kind == "turn":
            out.turns.append(resp.turn)
        else:
            out.problems.append(resp.problem)
    return out


def frame_agreement(events: Sequence[vad_pb2.VadEvent], rttm: Path, n_samples: int, rate: int = 16000) -> float:
    """Share of 32 ms frames whose centre is labelled the same by the events and the .rttm turns.

    A frame is speech in the reference when its centre lies inside any speaker turn, and speech
    for the VAD when its centre lies in [SPEECH_STARTED offset, SPEECH_STOPPED offset)."""
    frame = int(0.032 * rate)
    centres = np.arange(frame // 2, n_samples - frame // 2, frame) / rate
    truth = np.zeros(len(centres), bool)
    for line in rttm.read_text().splitlines():
        start, dur = float(line.split()[3]), float(line.split()[4])
        truth |= (centres >= start) & (centres < start + dur)
    pred = np.zeros(len(centres), bool)
    start_s: float | None = None
    for ev in events:
        if ev.type == vad_pb2.SPEECH_STARTED:
            start_s = ev.offset_samples / rate
        elif start_s is not None:
            pred |= (centres >= start_s) & (centres < ev.offset_samples / rate)
            start_s = None
    return float((pred == truth).mean())
