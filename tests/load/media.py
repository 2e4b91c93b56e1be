"""Load driver for the media gateway: N candidate peers talking to media at once.

This process runs N aiortc client peers (services/media/client.py, the candidate client), each
sending a real recording (looped, every peer at a different position) and receiving audio, and an
echo orchestrator on the Session contract (tests/fakes/session.py in echo mode) that sends each
32 ms chunk straight back. media runs as its own process (or several with SO_REUSEPORT), and so
does the baseline: aiortc's own minimal echo (tests/load/aiortc_echo.py) with the same peers.

Measured per target, in the steady state once every peer is connected: CPU % of one core per
peer and RSS growth per peer (from /proc), and the audio round trip in -> out, found by
cross-correlating what each peer heard with what it sent (speech windows only). For media the
echo fake's own time (chunk in -> echo out, measured inside the fake) is subtracted, leaving
what media adds. The client's receive jitter buffer is set like media's (the page asks Chromium
for the lowest playout delay), and so is the baseline server's.

    python -m tests.load.media --peers 10 --seconds 30
    python -m tests.load.media --peers 20 --seconds 30 --processes 2   # SO_REUSEPORT workers
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np

from services.common.audio import resample
from services.media.client import FRAME, RATE, ClientPeer, OfferRefused, WavTrack
from services.media.gateway import restrict_ice_to_loopback
from services.media.peer import set_jitter_prefetch
from tests.fakes.session import FakeSession, start_fake
from tests.load.harness import Histogram, LoadRun, ProcSampler, arg_parser, emit, load_recordings, run_load
from tests.support.procs import ROOT, free_port

BENCH = [
    ["--peers", "10", "--seconds", "30"],
    ["--peers", "20", "--seconds", "30"],
    ["--peers", "20", "--seconds", "30", "--processes", "2"],
]

JITTER_PREFETCH = 1  # media's default MEDIA_JITTER_PREFETCH, used by the clients and the baseline too
CORR_RATE = 8000     # cross-correlation runs at 8 kHz (speech band; media's uplink is 16 kHz anyway)
WINDOW_S = 0.2       # one latency sample per 200 ms of heard speech ...
STEP_S = 0.25        # ... every 250 ms
MAX_LAG_S = 1.0
MIN_CORR = 0.5       # normalised correlation a window needs to count as matched
SPEECH_RMS = 32768 * 10 ** (-40 / 20)  # -40 dBFS: louder windows are speech


# ---- the echo orchestrator ----------------------------------------------------------------------

class TimedEcho(FakeSession):
    """FakeSession in echo mode that also times itself: chunk read from media -> echo yielded back.

    With `speech_only`, quiet chunks are not echoed, so the agent audio comes in bursts (turns) as
    from the real orchestrator and media's playout queue drains between them. Echoing every chunk
    (continuous) feeds a real-time track from a real-time source: each arrival gap media bridges with
    silence stays as queued delay, so the queue settles at the worst jitter seen (see docs).
    """

    def __init__(self, speech_only: bool = True) -> None:
        super().__init__(greeting=None, echo=True, barge_in=False)
        self.speech_only = speech_only
        self.hold_ms = Histogram()
        self.quiet_dropped = 0

    def _quiet(self, pcm: bytes) -> bool:
        return float(np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(np.float64) ** 2))) < SPEECH_RMS

    async def Connect(self, request_iterator, context):  # noqa: N802 (gRPC naming)
        arrived: dict[int, float] = {}

        async def stamped() -> AsyncIterator[Any]:
            async for msg in request_iterator:
                if msg.WhichOneof("msg") == "audio":
                    arrived[msg.audio.offset_samples] = time.perf_counter()
                yield msg

        async for out in super().Connect(stamped(), context):
            if out.WhichOneof("msg") == "audio":
                if self.speech_only and self._quiet(out.audio.chunk.pcm):
                    arrived.pop(out.audio.chunk.offset_samples, None)
                    self.quiet_dropped += 1
                    continue
                t = arrived.pop(out.audio.chunk.offset_samples, None)
                if t is not None:
                    self.hold_ms.add(1000 * (time.perf_counter() - t))
            yield out


# ---- targets: media processes or the aiortc echo baseline ----------------------------------------

@dataclass
class Target:
    name: str
    url: str
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]


async def _wait_healthy(url: str, procs: Sequence[subprocess.Popen], timeout: float = 30) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args} exited with {p.returncode} before serving")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{url}/healthz") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{url} not healthy after {timeout}s")


@contextlib.asynccontextmanager
async def running(name: str, argvs: list[list[str]], port: int, env: dict[str, str]) -> AsyncIterator[Target]:
    base = {**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true", "LOG_LEVEL": "WARNING"}
    procs = [subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, env={**base, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for argv in argvs]
    try:
        target = Target(name, f"http://127.0.0.1:{port}", procs)
        await _wait_healthy(target.url, procs)
        if len(procs) > 1:
            await asyncio.sleep(1.0)  # every worker has bound the port (each answers health on its own)
        yield target
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                await asyncio.to_thread(p.wait, 15)
            except subprocess.TimeoutExpired:
                p.kill()


def media_target(session_addr: str, processes: int) -> contextlib.AbstractAsyncContextManager[Target]:
    port = free_port()
    env = {"MEDIA_PORT": str(port), "ORCHESTRATOR_ADDR": session_addr, "MEDIA_ICE_LOOPBACK_ONLY": "true",
           "MEDIA_JITTER_PREFETCH": str(JITTER_PREFETCH), "MEDIA_REUSE_PORT": str(processes > 1).lower()}
    return running("media", [["services.media"]] * processes, port, env)


def baseline_target() -> contextlib.AbstractAsyncContextManager[Target]:
    port = free_port()
    argv = ["tests.load.aiortc_echo", "--port", str(port), "--jitter-prefetch", str(JITTER_PREFETCH)]
    return running("aiortc_echo", [argv], port, {})


# ---- round-trip latency from the audio itself ---------------------------------------------------

def round_trips_ms(sent: np.ndarray, sent_at: Sequence[float], heard: Sequence[np.ndarray],
                   heard_at: Sequence[float], since: float) -> tuple[list[float], int]:
    """(latencies, unmatched windows): for heard speech windows after `since`, where in what was sent
    they best correlate, and how long after sending that audio arrived.

    A sample's send time is its frame's hand-over to the encoder plus its place in the frame; a heard
    window's time is the arrival of its first frame, so a zero-delay loop measures 0.
    """
    if not heard or not len(sent):
        return [], 0
    ratio = RATE // CORR_RATE
    sent_lo = resample(sent, RATE, CORR_RATE).astype(np.float64)
    frame_lo = FRAME // ratio
    sent_at_arr = np.asarray(sent_at)
    win_frames = int(WINDOW_S * RATE / FRAME)
    step = max(1, int(STEP_S * RATE / FRAME))
    out: list[float] = []
    unmatched = 0
    for k in range(0, len(heard) - win_frames, step):
        t_r = heard_at[k]
        if t_r < since:
            continue
        win = np.concatenate(heard[k:k + win_frames]).astype(np.float64)
        if np.sqrt(np.mean(win ** 2)) < SPEECH_RMS:
            continue
        win = resample(win.astype(np.int16), RATE, CORR_RATE).astype(np.float64)
        first = int(np.searchsorted(sent_at_arr, t_r - MAX_LAG_S))
        last = int(np.searchsorted(sent_at_arr, t_r))
        seg = sent_lo[first * frame_lo:last * frame_lo + len(win)]
        if len(seg) < 2 * len(win):
            continue
        n = 1 << int(np.ceil(np.log2(len(seg) + len(win))))
        corr = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(win, n)), n)[:len(seg) - len(win) + 1]
        energy = np.sqrt(np.convolve(seg ** 2, np.ones(len(win)), "valid")) * np.sqrt(np.sum(win ** 2))
        score = corr / np.maximum(energy, 1e-9)
        best = int(np.argmax(score))
        if score[best] < MIN_CORR:
            unmatched += 1
            continue
        j = first * frame_lo + best  # index into sent at CORR_RATE
        sent_time = sent_at_arr[j // frame_lo] + (j % frame_lo) / CORR_RATE
        out.append(1000 * (t_r - sent_time))
    return out, unmatched


# ---- one measured run against one target --------------------------------------------------------

@dataclass
class Steady:
    """The steady-state window: from every peer connected to the run's deadline."""

    peers: int
    pids: list[int]
    connected: int = 0
    started: float = 0.0
    all_in: asyncio.Event = field(default_factory=asyncio.Event)
    samplers: list[ProcSampler] = field(default_factory=list)
    rss_before: float = 0.0
    stopped: bool = False
    result: dict[str, float] = field(default_factory=dict)

    def peer_connected(self) -> None:
        self.connected += 1
        if self.connected == self.peers:
            self.started = time.time()
            self.samplers = [ProcSampler(pid) for pid in self.pids]
            for s in self.samplers:
                s.start()
            self.all_in.set()

    async def stop(self) -> None:
        """Once, by the first peer to reach the deadline (before any peer hangs up)."""
        if not self.samplers or self.stopped:
            return
        self.stopped = True
        parts = [await s.stop() for s in self.samplers]
        self.result = {"cpu_pct": round(sum(p.get("cpu_pct", 0.0) for p in parts), 2),
                       "rss_mb": round(sum(p.get("rss_mb_max", 0.0) for p in parts), 2)}


def rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


async def measure(target: Target, peers: int, seconds: float, fake: FakeSession | None,
                  quiet: bool) -> dict[str, Any]:
    """Connect `peers` clients to `target`, hold them for `seconds` of steady state, measure."""
    recordings = load_recordings(RATE)
    steady = Steady(peers, target.pids)
    steady.rss_before = rss_mb(target.pids)
    results: list[tuple[list[float], int]] = []
    analysis: list[asyncio.Future[tuple[list[float], int]]] = []
    loop = asyncio.get_running_loop()

    async def one_peer(i: int, run: LoadRun) -> None:
        rec = run.recording(i)
        start = int((i * 7.3 % rec.seconds) * rec.rate)  # every peer at another place in the recording
        source = WavTrack(np.roll(rec.samples, -start), rec.rate, loop=True)
        iid, token = fake.create() if fake is not None else ("bench_" + secrets.token_hex(4), "none")
        client = ClientPeer(target.url, iid, source, token=token)
        try:
            await client.connect()
        except OfferRefused as exc:
            raise RuntimeError(f"offer refused: {exc}") from None
        for t in client.pc.getTransceivers():
            if t.kind == "audio":
                set_jitter_prefetch(t, JITTER_PREFETCH)
        try:
            await client.wait_connected(10)
            steady.peer_connected()
            async with asyncio.timeout(30):
                await steady.all_in.wait()
            await asyncio.sleep(max(0.0, steady.started + seconds - time.time()))
            run.count("frames_sent", len(source.sent_at))
            run.count("frames_heard", len(client.heard.frames))
        finally:
            await steady.stop()
            if client.channel is not None and client.channel.readyState == "open":
                client.send_event(type="hangup")  # reaches the process that holds the peer (SO_REUSEPORT)
            await client.close()
        # settle 1 s after connect-all: the first packets go through jitter-buffer start-up
        analysis.append(loop.run_in_executor(None, round_trips_ms, source.sent_signal(), list(source.sent_at),
                                             list(client.heard.frames), list(client.heard.at), steady.started + 1))

    summary = await run_load(one_peer, streams=peers, seconds=seconds + 5, progress=not quiet,
                             recordings=recordings, ramp_s=min(3.0, 0.1 * peers))
    results = list(await asyncio.gather(*analysis))
    rtt = Histogram()
    for lat, _bad in results:
        for v in lat:
            rtt.add(v)
    unmatched = sum(bad for _lat, bad in results)
    out: dict[str, Any] = {"target": target.name, "processes": len(target.pids), **steady.result}
    if steady.result:
        out["cpu_pct_per_peer"] = round(steady.result["cpu_pct"] / peers, 2)
        out["rss_mb_per_peer"] = round(max(0.0, steady.result["rss_mb"] - steady.rss_before) / peers, 2)
    out["rtt_ms"] = rtt.summary()
    out["rtt_windows_unmatched"] = unmatched
    out["errors"] = summary["errors"]
    if summary.get("first_errors"):
        out["first_errors"] = summary["first_errors"]
    out["frames_sent"], out["frames_heard"] = summary.get("frames_sent", 0), summary.get("frames_heard", 0)
    return out


async def main(argv: list[str]) -> dict[str, Any]:
    p = arg_parser("python -m tests.load.media", "media load: N aiortc candidate peers against media vs aiortc echo")
    p.add_argument("--peers", type=int, default=10, help="concurrent candidate peers")
    p.add_argument("--processes", type=int, default=1, help="media processes on one port (SO_REUSEPORT)")
    p.add_argument("--echo", choices=("speech", "continuous"), default="speech",
                   help="echo only speech chunks (turns, the product's case) or every chunk")
    p.add_argument("--no-baseline", action="store_true", help="skip the aiortc echo baseline run")
    args = p.parse_args(argv)
    restrict_ice_to_loopback()  # the clients' ICE: this host may be loopback-only
    summary: dict[str, Any] = {"peers": args.peers, "seconds": args.seconds, "processes": args.processes,
                               "echo": args.echo}
    fake = TimedEcho(speech_only=args.echo == "speech")
    server, port = await start_fake(fake)
    try:
        async with media_target(f"127.0.0.1:{port}", args.processes) as media:
            m = await measure(media, args.peers, args.seconds, fake, args.quiet)
    finally:
        await server.stop(0)
    hold = fake.hold_ms.summary()
    if not args.no_baseline:
        async with baseline_target() as echo:
            b = await measure(echo, args.peers, args.seconds, None, args.quiet)
        summary["baseline"] = b
    summary["media"] = m
    summary["echo_fake_hold_ms"] = hold
    # the headline numbers, flat
    summary["media_cpu_pct_per_peer"] = m.get("cpu_pct_per_peer")
    summary["media_rss_mb_per_peer"] = m.get("rss_mb_per_peer")
    if m["rtt_ms"].get("count") and hold.get("count"):
        summary["media_rtt_p50_ms"] = round(m["rtt_ms"]["p50"] - hold["p50"], 1)
        # the fake's typical time, not its p99: percentiles of a difference are not differences of percentiles
        summary["media_rtt_p99_ms"] = round(m["rtt_ms"]["p99"] - hold["p50"], 1)
    if "baseline" in summary:
        b = summary["baseline"]
        summary["baseline_cpu_pct_per_peer"] = b.get("cpu_pct_per_peer")
        summary["baseline_rss_mb_per_peer"] = b.get("rss_mb_per_peer")
        summary["baseline_rtt_p50_ms"] = b["rtt_ms"].get("p50")
        summary["baseline_rtt_p99_ms"] = b["rtt_ms"].get("p99")
        if b.get("cpu_pct_per_peer") and m.get("cpu_pct_per_peer") is not None:
            summary["cpu_ratio_vs_aiortc_echo"] = round(m["cpu_pct_per_peer"] / b["cpu_pct_per_peer"], 2)
    summary["errors"] = m["errors"] + summary.get("baseline", {}).get("errors", 0)
    return summary


if __name__ == "__main__":
    emit(asyncio.run(main(sys.argv[1:])))
