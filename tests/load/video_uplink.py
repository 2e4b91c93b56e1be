"""Candidate audio latency media -> orchestrator, with and without a screen share flowing.

One aiortc candidate peer (services/media/client.py) sends a real recording; media runs as its own
process, bridged to the fake orchestrator (tests/fakes/session.py, in this process) that stamps
each 32 ms chunk's arrival. A chunk's latency is its arrival minus the wall time the client
handed the 20 ms frame holding the chunk's last sample to its Opus encoder: Opus, RTP on loopback,
media's jitter buffer, decode, resampling, the uplink queues and gRPC. "screen" adds a 1280x720
screen share (an editor being typed into, 5 fps from the client), consented, at the orchestrator's
SCREEN_FOCUS rate (FrameRates screen 2 fps), so media decodes VP8, scales and JPEG-encodes frames
while the audio flows. The runs alternate A (audio only) / B (screen) so machine noise hits both.

    python -m tests.load.video_uplink --seconds 20 --runs 3
"""
from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import math
import time

import av
import numpy as np
from aiortc import VideoStreamTrack

from interview.v1 import session_pb2
from services.common.audio import read_wav
from services.media.client import ClientPeer, WavTrack
from tests.fakes.session import FakeSession, start_fake
from tests.media.helpers import SPEECH
from tests.support.procs import MediaProcess
from tests.video import screens

RATE_48K, FRAME_48K, CHUNK_16K = 48000, 960, 512
SETTLE_S = 3.0


class TypingScreen(VideoStreamTrack):
    """An editor where a line of code grows by a few characters every frame (VP8 has work to do)."""

    def __init__(self, fps: float = 5.0):
        super().__init__()
        self.fps, self._n, self._start = fps, 0, 0.0
        code = screens.TWO_SUM
        self.frames = [np.asarray(screens.editor(code[:len(code) * (i + 1) // 12], size=(1280, 720)).convert("RGB"))
                       for i in range(12)]

    async def recv(self) -> av.VideoFrame:
        if not self._start:
            self._start = time.monotonic()
        await asyncio.sleep(max(0.0, self._start + self._n / self.fps - time.monotonic()))
        frame = av.VideoFrame.from_ndarray(self.frames[self._n % len(self.frames)], format="rgb24")
        frame.pts, frame.time_base = int(self._n * 90000 / self.fps), fractions.Fraction(1, 90000)
        self._n += 1
        return frame


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(p / 100 * len(s)) - 1))] if s else float("nan")


async def one_run(media: MediaProcess, fake: FakeSession, screen: bool, seconds: float) -> dict[str, float]:
    samples, rate = read_wav(SPEECH / "lecture_60s_16k.wav")
    iid, token = fake.create()
    mic = WavTrack(samples, rate, loop=True)
    client = ClientPeer(media.url, iid, mic, token=token, screen=TypingScreen() if screen else None,
                        consent={"screen": screen})
    n0 = len(fake.sessions)
    await client.connect()
    await client.wait_connected(10)
    rec = await fake.wait_session(n0 + 1)
    await asyncio.sleep(seconds)
    await client.hangup()
    offsets = sorted(rec.audio)
    at = dict(zip(rec.audio.keys(), rec.audio_at))  # insertion order = arrival order
    sent = mic.sent_at
    lat = []
    for off in offsets:
        last48 = (off + CHUNK_16K) * 3 - 1  # the chunk's last sample at 48 kHz
        k = last48 // FRAME_48K
        if k < len(sent) and sent[k] - sent[0] >= SETTLE_S:
            lat.append((at[off] - sent[k]) * 1000)
    return {"chunks": len(lat), "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
            "frames": len(rec.frames)}


async def main(seconds: float, runs: int) -> None:
    fake = FakeSession(greeting=None, barge_in=False,
                       frame_rates=session_pb2.FrameRates(camera_fps=0.5, screen_fps=2.0))
    server, port = await start_fake(fake)
    media = MediaProcess("media", env={"MEDIA_ICE_LOOPBACK_ONLY": "true", "ORCHESTRATOR_ADDR": f"127.0.0.1:{port}"})
    await asyncio.to_thread(media.start)
    results: dict[str, list[dict[str, float]]] = {"audio_only": [], "screen": []}
    try:
        for i in range(runs):
            for name in (("audio_only", "screen") if i % 2 == 0 else ("screen", "audio_only")):
                r = await one_run(media, fake, name == "screen", seconds)
                results[name].append(r)
                print(json.dumps({"run": i, "mode": name, **r}), flush=True)
    finally:
        media.stop()
        await server.stop(0)
    summary = {name: {"p50_ms": round(float(np.median([r["p50_ms"] for r in rs])), 1),
                      "p99_ms": round(float(np.median([r["p99_ms"] for r in rs])), 1),
                      "frames_per_run": float(np.median([r["frames"] for r in rs]))} for name, rs in results.items()}
    a, b = summary["audio_only"], summary["screen"]
    summary["ratio_screen_over_audio_only"] = {"p50": round(b["p50_ms"] / a["p50_ms"], 2),
                                               "p99": round(b["p99_ms"] / a["p99_ms"], 2)}
    print(json.dumps(summary))


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m tests.load.video_uplink", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--runs", type=int, default=3, help="A/B pairs, alternating order")
    args = p.parse_args()
    asyncio.run(main(args.seconds, args.runs))
