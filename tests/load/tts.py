"""Load driver for the tts service: N interviewers speaking at once.

Each stream is one interviewer: an LLM-paced response (one word every --token-ms) goes in, the
audio is "played" in real time on the driver side, and the next response starts when the last
one has finished playing (plus --listen-s of candidate turn). Measured: time to first audio
after the first speakable piece, time to first LOUD audio (the first 10 ms at or above -45 dBFS,
when a player that starts at the first chunk plays it: a synthesiser's leading silence delays the
first word, not the first chunk), audio chunks that arrive after their playback time (underruns,
with a 200 ms jitter buffer), and the server's CPU per second of audio, flite children included
(the real-time factor: 1 / rtf is how many continuous voices one core keeps up with).

    python -m tests.load.tts --streams 8 --seconds 20 --provider offline
    python -m tests.load.tts --streams 8 --seconds 20 --provider cartesia-fake
    python -m tests.load.tts --streams 1 --seconds 20 --provider offline --trim off   # A/B the leading-silence trim
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np

from interview.v1 import tts_pb2, tts_pb2_grpc
from services.common.audio import samples_per_ms, window_dbfs
from services.tts.segmenter import Segmenter
from tests.load.harness import LoadRun, arg_parser, emit, run_load
from tests.support.procs import ServiceProcess

BENCH = [
    ["--streams", "1", "--seconds", "20", "--provider", "offline"],
    ["--streams", "8", "--seconds", "30", "--provider", "offline"],
    ["--streams", "16", "--seconds", "30", "--provider", "offline"],
    ["--streams", "32", "--seconds", "30", "--provider", "offline"],
    ["--streams", "8", "--seconds", "30", "--provider", "cartesia-fake"],
]

RESPONSES = [
    "Great, thanks for walking me through that. How did you decide which database to use, "
    "and what would you change if the traffic grew ten times?",
    "Okay, let's move on. In this part I will give you a problem, and you can think out loud while you work. "
    "Take your time.",
    "That makes sense. What was the hardest bug you found in that project, and how did you track it down?",
    "**Good point!** Let's talk about caching: where would you put a cache in this design, "
    "and how would you keep it consistent?",
]
JITTER_BUFFER_S = 0.2
RATE = 24000
LOUD_DBFS, WIN_MS = -45.0, 10  # "first loud audio", as tests/load/voice_to_voice.py measures the page's playback


def _cpu_s(pid: int) -> float:
    """utime + stime + reaped children's (flite) cutime + cstime, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def _requests(text: str, token_s: float, marks: dict[str, float]) -> AsyncIterator[tts_pb2.SynthesizeRequest]:
    seg = Segmenter()
    yield tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(sample_rate_hz=RATE))
    words = text.split(" ")
    for i, word in enumerate(words):
        token = word if i == 0 else " " + word
        yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(text=token))
        if "piece" not in marks and seg.push(token):
            marks["piece"] = time.monotonic()
        await asyncio.sleep(token_s)
    marks.setdefault("piece", time.monotonic())
    yield tts_pb2.SynthesizeRequest(end=tts_pb2.EndOfText())


def make_stream(stub: tts_pb2_grpc.TtsStub, token_s: float, listen_s: float):
    async def one_stream(i: int, run: LoadRun) -> None:
        n = i
        while not run.done():
            marks: dict[str, float] = {}
            first: float | None = None
            samples = 0
            lead: list[np.ndarray] | None = []  # audio until the first loud window (None once found)
            async for r in stub.Synthesize(_requests(RESPONSES[n % len(RESPONSES)], token_s, marks)):
                now = time.monotonic()
                kind = r.WhichOneof("msg")
                if kind == "audio":
                    if first is None:
                        first = now
                        run.hist("ttfa_ms").add(1000 * (now - marks["piece"]))
                    if lead is not None:
                        lead.append(np.frombuffer(r.audio.pcm, dtype="<i2"))
                        loud = np.nonzero(window_dbfs(np.concatenate(lead), RATE, WIN_MS) >= LOUD_DBFS)[0]
                        if len(loud):  # played when its turn comes after the first chunk, or on arrival if later
                            at = loud[0] * samples_per_ms(RATE, WIN_MS) / RATE
                            run.hist("ttfl_ms").add(1000 * (max(now, first + at) - marks["piece"]))
                            lead = None
                    if now > first + JITTER_BUFFER_S + r.audio.offset_samples / RATE:
                        run.count("underrun_chunks")
                    run.count("chunks")
                    samples += len(r.audio.pcm) // 2
                elif kind == "provider_event":
                    run.count("provider_events")
            run.count("utterances")
            run.count("audio_ms", samples * 1000 // RATE)
            if first is not None:  # the interviewer is heard to the end, then the candidate answers
                played = first + samples / RATE + listen_s
                await asyncio.sleep(max(0.0, min(played, run.deadline) - time.monotonic()))
            n += 1
    return one_stream


async def main(argv: list[str]) -> None:
    p = arg_parser("python -m tests.load.tts", "TTS load: concurrent interviewers speaking")
    p.add_argument("--provider", choices=("offline", "cartesia-fake"), default="offline")
    p.add_argument("--token-ms", type=float, default=30.0, help="LLM pace: one word every N ms")
    p.add_argument("--listen-s", type=float, default=0.0, help="candidate's turn between responses")
    p.add_argument("--trim", choices=("on", "off"), default="on",
                   help="the started service's TTS_OFFLINE_TRIM_LEADING_SILENCE (A/B; no effect with --target)")
    args = p.parse_args(argv)
    async with contextlib.AsyncExitStack() as stack:
        env = {"TTS_PROVIDERS": "offline", "LOG_LEVEL": "WARNING", "TTS_OFFLINE_CONCURRENCY": "8",
               "TTS_OFFLINE_TRIM_LEADING_SILENCE": str(args.trim == "on").lower()}
        if args.provider == "cartesia-fake":
            from tests.fakes.cartesia import FakeCartesia

            env = {**env, **(await stack.enter_async_context(FakeCartesia())).env(), "TTS_PROVIDERS": "cartesia"}
        pid = None
        target = args.target
        if not target:
            proc = await asyncio.to_thread(ServiceProcess("tts", env=env).start)
            stack.push_async_callback(asyncio.to_thread, proc.stop)
            target, pid = proc.address, proc.pid
        channel = await stack.enter_async_context(grpc.aio.insecure_channel(target))
        stub = tts_pb2_grpc.TtsStub(channel)
        cpu0 = _cpu_s(pid) if pid else 0.0
        summary = await run_load(make_stream(stub, args.token_ms / 1000, args.listen_s), streams=args.streams,
                                 seconds=args.seconds, pid=pid, progress=not args.quiet, ramp_s=1.0)
        audio_s = summary.get("audio_ms", 0) / 1000
        summary["provider"] = args.provider
        summary["concurrent_streams"] = args.streams
        summary["ttfa_p50_ms"] = summary.get("ttfa_ms", {}).get("p50")
        summary["ttfa_p99_ms"] = summary.get("ttfa_ms", {}).get("p99")
        summary["ttfl_p50_ms"] = summary.get("ttfl_ms", {}).get("p50")  # first loud audio, as heard
        summary["ttfl_p99_ms"] = summary.get("ttfl_ms", {}).get("p99")
        summary["trim"] = args.trim
        summary["underrun_pct"] = round(100 * summary.get("underrun_chunks", 0) / max(1, summary.get("chunks", 0)), 2)
        if pid:
            server_cpu_s = _cpu_s(pid) - cpu0
            summary["server_cpu_s"] = round(server_cpu_s, 2)
            summary["rtf"] = round(server_cpu_s / max(audio_s, 1e-9), 4)  # CPU seconds per audio second
        summary["audio_s"] = round(audio_s, 1)
    emit(summary)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
