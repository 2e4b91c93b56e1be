"""Load driver for the media gateway: N candidate peers talking to media at once.

N aiortc client peers (services/media/client.py, the candidate client) each send a real recording
(looped, every peer at a different position) and receive audio. They run in several worker
processes (tests/load/media_clients.py; one process cannot run ten Opus encoders and decoders in
real time here), so the clients are not the bottleneck being measured. media runs as its own
process (or several with SO_REUSEPORT) bridged to an echo orchestrator on the Session contract
(tests/fakes/session.py in echo mode, in this process) that sends each 32 ms chunk back as agent
audio. The baseline is aiortc's own minimal echo (tests/load/aiortc_echo.py) with the same peers.

Measured per target over the steady window (every peer connected, plus a settle second): CPU %
of one core per peer and RSS growth per peer (from /proc), and the audio round trip in -> out,
found by cross-correlating what each peer heard with what it sent (speech windows only). For media
the echo fake's own time (chunk in -> echo out, measured inside the fake) is subtracted, leaving
what media adds. The clients' receive jitter buffer is set like media's (the page asks Chromium
for the lowest playout delay), and so is the baseline server's.

    python -m tests.load.media --peers 10 --seconds 30
    python -m tests.load.media --peers 20 --seconds 30 --processes 2   # SO_REUSEPORT workers
"""
from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import aiohttp
import numpy as np

from tests.fakes.session import FakeSession, start_fake
from tests.load.harness import Histogram, ProcSampler, arg_parser, emit
from tests.load.media_clients import SPEECH_RMS, PeerSpec, WorkerSpec, worker_main
from tests.support.procs import ROOT, free_port

BENCH = [
    ["--peers", "4", "--seconds", "30"],
    ["--peers", "8", "--seconds", "30"],
    ["--peers", "10", "--seconds", "30"],
    ["--peers", "10", "--seconds", "30", "--processes", "2", "--no-baseline"],
]

JITTER_PREFETCH = 1  # media's default MEDIA_JITTER_PREFETCH, used by the clients and the baseline too
PEERS_PER_CLIENT_PROCESS = 4
SETTLE_S = 1.0       # after the last peer connects, before the window opens


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
           "MEDIA_OFFER_RATE_PER_MIN": "0",  # every load client comes from 127.0.0.1
           "MEDIA_JITTER_PREFETCH": str(JITTER_PREFETCH), "MEDIA_REUSE_PORT": str(processes > 1).lower()}
    return running("media", [["services.media"]] * processes, port, env)


def baseline_target() -> contextlib.AbstractAsyncContextManager[Target]:
    port = free_port()
    argv = ["tests.load.aiortc_echo", "--port", str(port), "--jitter-prefetch", str(JITTER_PREFETCH)]
    return running("aiortc_echo", [argv], port, {})


# ---- one measured run against one target --------------------------------------------------------

def rss_mb(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
    return total


async def _recv(conn: Connection, proc: BaseProcess, timeout: float) -> Any:
    """The worker's next message, or an error if it died or went silent."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(conn.poll, 0.2):
        if not proc.is_alive():
            raise RuntimeError(f"client worker exited with {proc.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"client worker silent for {timeout:.0f} s")
    return conn.recv()


@contextlib.contextmanager
def client_workers(specs: list[WorkerSpec]) -> Iterator[list[tuple[BaseProcess, Connection]]]:
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs gRPC and asyncio
    workers = []
    try:
        for spec in specs:
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(spec, theirs), daemon=True)
            proc.start()
            workers.append((proc, ours))
        yield workers
    finally:
        for proc, _ in workers:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


async def _connected(workers: list[tuple[BaseProcess, Connection]]) -> list[str]:
    """Wait for each worker's "connected"; the errors of the peers that did not join."""
    errors: list[str] = []
    for proc, conn in workers:
        _kind, info = await _recv(conn, proc, 60)
        errors += info["errors"]
    return errors


async def measure(target: Target, peers: int, seconds: float, client_procs: int, fake: FakeSession | None,
                  quiet: bool) -> dict[str, Any]:
    """Join `peers` clients (spread over `client_procs` worker processes) to `target`, hold them for
    `seconds` of steady state once all are connected, and measure it.

    One peer per target process joins first: RSS per peer is then what each further peer adds (the
    capacity-planning number), and the first peers' share plus the one-time costs (lazy imports,
    codec tables, allocator arenas) is reported apart as first_peers_rss_mb.
    """
    creds = [fake.create() if fake is not None else ("bench_" + secrets.token_hex(4), "none") for _ in range(peers)]
    first = min(len(target.pids), peers - 1)
    rest = list(range(first, peers))
    per = [rest[w::client_procs] for w in range(client_procs)]
    ramp = min(3.0, 0.1 * peers)
    first_spec = [WorkerSpec(target.url, [PeerSpec(i, *creds[i]) for i in range(first)], JITTER_PREFETCH)]
    specs = [WorkerSpec(target.url, [PeerSpec(i, *creds[i]) for i in idx], JITTER_PREFETCH,
                        ramp_s=ramp, lead_s=ramp * w / peers) for w, idx in enumerate(per) if idx]
    rss_start = rss_mb(target.pids)
    with client_workers(first_spec if first else []) as early:
        errors = await _connected(early)
        await asyncio.sleep(0.5)
        rss_before = rss_mb(target.pids)
        with client_workers(specs) as later:
            workers = early + later
            errors += await _connected(later)
            since = time.time() + SETTLE_S  # past the jitter buffers' start-up
            until = since + seconds
            for _, conn in workers:
                conn.send(("window", since, until))
            log(quiet, f"{target.name}: {peers - len(errors)}/{peers} peers connected; measuring {seconds:.0f} s")
            await asyncio.sleep(since - time.time())
            samplers = [ProcSampler(pid) for pid in target.pids]
            client_samplers = [ProcSampler(proc.pid) for proc, _ in workers if proc.pid]
            for s in samplers + client_samplers:
                s.start()
            await asyncio.sleep(max(0.0, until - time.time()))
            parts = [await s.stop() for s in samplers]
            clients_cpu = sum([(await s.stop()).get("cpu_pct", 0.0) for s in client_samplers])
            results = [(await _recv(conn, proc, 120))[1] for proc, conn in workers]
    rtt = Histogram()
    for r in results:
        for v in r["rtt_ms"]:
            rtt.add(v)
    cpu = sum(p.get("cpu_pct", 0.0) for p in parts)
    rss = sum(p.get("rss_mb_max", 0.0) for p in parts)
    sent = sum(r["frames_sent"] for r in results)
    heard = sum(r["frames_heard"] for r in results)
    return {"target": target.name, "processes": len(target.pids), "client_processes": len(workers),
            "cpu_pct": round(cpu, 2), "rss_mb": round(rss, 2), "first_peers_rss_mb": round(rss_before - rss_start, 2),
            "cpu_pct_per_peer": round(cpu / peers, 2),
            "rss_mb_per_peer": round(max(0.0, rss - rss_before) / max(1, peers - first), 2),
            "rtt_ms": rtt.summary(), "rtt_windows_unmatched": sum(r["unmatched"] for r in results),
            "frames_sent": sent, "frames_heard": heard, "clients_cpu_pct": round(clients_cpu, 1),
            # < 1 means the clients (or the target) fell behind real time: then latencies mean little
            "heard_per_sent": round(heard / sent, 3) if sent else None,
            "errors": len(errors), **({"first_errors": errors[:3]} if errors else {})}


def log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


async def main(argv: list[str]) -> dict[str, Any]:
    p = arg_parser("python -m tests.load.media", "media load: N aiortc candidate peers against media vs aiortc echo")
    p.add_argument("--peers", type=int, default=10, help="concurrent candidate peers")
    p.add_argument("--processes", type=int, default=1, help="media processes on one port (SO_REUSEPORT)")
    p.add_argument("--client-processes", type=int, default=0,
                   help=f"worker processes for the client peers (default: one per {PEERS_PER_CLIENT_PROCESS} peers)")
    p.add_argument("--echo", choices=("speech", "continuous"), default="speech",
                   help="echo only speech chunks (turns, the product's case) or every chunk")
    p.add_argument("--no-baseline", action="store_true", help="skip the aiortc echo baseline run")
    args = p.parse_args(argv)
    client_procs = args.client_processes or math.ceil(args.peers / PEERS_PER_CLIENT_PROCESS)
    summary: dict[str, Any] = {"peers": args.peers, "seconds": args.seconds, "processes": args.processes,
                               "client_processes": client_procs, "echo": args.echo}
    fake = TimedEcho(speech_only=args.echo == "speech")
    server, port = await start_fake(fake)
    try:
        async with media_target(f"127.0.0.1:{port}", args.processes) as media:
            m = await measure(media, args.peers, args.seconds, client_procs, fake, args.quiet)
    finally:
        await server.stop(0)
    hold = fake.hold_ms.summary()
    if not args.no_baseline:
        async with baseline_target() as echo:
            summary["baseline"] = await measure(echo, args.peers, args.seconds, client_procs, None, args.quiet)
    summary["media"] = m
    summary["echo_fake_hold_ms"] = hold
    # the headline numbers, flat
    summary["media_cpu_pct_per_peer"] = m["cpu_pct_per_peer"]
    summary["media_rss_mb_per_peer"] = m["rss_mb_per_peer"]
    if m["rtt_ms"].get("count") and hold.get("count"):
        summary["media_rtt_p50_ms"] = round(m["rtt_ms"]["p50"] - hold["p50"], 1)
        # the fake's typical time, not its p99: percentiles of a difference are not differences of percentiles
        summary["media_rtt_p99_ms"] = round(m["rtt_ms"]["p99"] - hold["p50"], 1)
    if "baseline" in summary:
        b = summary["baseline"]
        summary["baseline_cpu_pct_per_peer"] = b["cpu_pct_per_peer"]
        summary["baseline_rss_mb_per_peer"] = b["rss_mb_per_peer"]
        summary["baseline_rtt_p50_ms"] = b["rtt_ms"].get("p50")
        summary["baseline_rtt_p99_ms"] = b["rtt_ms"].get("p99")
        if b["cpu_pct_per_peer"]:
            summary["cpu_ratio_vs_aiortc_echo"] = round(m["cpu_pct_per_peer"] / b["cpu_pct_per_peer"], 2)
    summary["errors"] = m["errors"] + summary.get("baseline", {}).get("errors", 0)
    return summary


if __name__ == "__main__":
    emit(asyncio.run(main(sys.argv[1:])))
