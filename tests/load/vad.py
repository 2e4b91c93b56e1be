"""Load driver for the VAD: N Detect streams of real recordings in real time.

    python -m tests.load.vad --streams 200 --seconds 30 --chunk-ms 32

Summary: windows/s, event latency p50/p99 (from the moment the client sends the chunk that
completes the deciding window to the moment the client receives the event: the server-side
latency plus two loopback hops), server CPU % (of one core), the driver's own CPU, and the CPU
per stream counting both sides of the hop, as a ratio to per-session in-process Silero (one
onnxruntime session per stream, unbatched, called inline as Pipecat and LiveKit do), measured in
the same run right after the service run (`--baseline-streams 0` skips it).
"""
from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from typing import Any

import grpc
import numpy as np

from interview.v1 import common_pb2, vad_pb2, vad_pb2_grpc
from services.common.audio import pcm_to_int16
from services.vad.model import SileroModel, StreamState
from tests.load.harness import LoadRun, arg_parser, emit, load_recordings, run_load
from tests.support.procs import ServiceProcess

WINDOW = 512  # 16 kHz

# What `make bench` runs (recorded in docs/benchmarks.md).
PIN = ["--pin-cpu", "1", "--pin-driver", "0"]  # service on one core, the sender on the other
BENCH = [
    ["--streams", "200", "--seconds", "30", "--chunk-ms", "32", *PIN],
    ["--streams", "200", "--seconds", "30", "--chunk-ms", "64", *PIN],
    ["--streams", "120", "--seconds", "30", "--chunk-ms", "32", "--baseline-streams", "0", *PIN],
    ["--streams", "120", "--seconds", "30", "--chunk-ms", "64", "--baseline-streams", "0", *PIN],
    # turn scoring off vs on (docs/benchmarks.md "End of turn"), then capacity with it on
    *[["--streams", "40", "--seconds", "30", "--chunk-ms", "32", "--baseline-streams", "0", *PIN, *on]
      for on in ([], ["--turn-scoring"], [], ["--turn-scoring"])],
    *[["--streams", str(n), "--seconds", "30", "--chunk-ms", "32", "--baseline-streams", "0", *PIN, "--turn-scoring"]
      for n in (60, 80, 100)],
]
SOAK = [["--streams", "200", "--seconds", "300", "--chunk-ms", "32"]]


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of a process to one CPU (sched_setaffinity is per thread on Linux)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})


async def detect_stream(i: int, run: LoadRun, channel: grpc.aio.Channel, chunk_ms: float, probabilities: bool,
                        turn_scoring: bool = False) -> None:
    rec = run.recording(i)
    call = vad_pb2_grpc.VadStub(channel).Detect()
    await call.write(vad_pb2.DetectRequest(config=vad_pb2.VadConfig(
        sample_rate_hz=rec.rate, emit_probabilities=probabilities, stream_id=f"load-{i}",
        params=common_pb2.VadParams(min_silence_ms=300, turn_scoring=turn_scoring or None))))
    sent: deque[tuple[int, float]] = deque()  # (chunk end offset, send time), oldest first
    closing = asyncio.Event()

    async def writer() -> None:
        async for offset, pcm in run.paced(rec, chunk_ms=chunk_ms, start_s=(i * 1.37) % rec.seconds):
            await call.write(vad_pb2.DetectRequest(audio=common_pb2.AudioChunk(pcm=pcm, offset_samples=offset)))
            sent.append((offset + len(pcm) // 2, time.monotonic()))
            run.count("samples_sent", len(pcm) // 2)
        closing.set()  # events after this close open utterances at the end: not latency samples
        await call.done_writing()

    def latency(decided_at: int, name: str = "") -> None:
        now = time.monotonic()
        if closing.is_set():
            return
        while sent and sent[0][0] < decided_at:  # chunks entirely before the deciding window's end
            sent.popleft()
        if sent:
            name = name or ("event_latency_ms" if not probabilities else "window_latency_ms")
            run.hist(name).add((now - sent[0][1]) * 1000)

    task = asyncio.create_task(writer())
    try:
        async for resp in call:
            kind = resp.WhichOneof("msg")
            if kind == "event":
                run.count("events")
                if not probabilities:
                    latency(resp.event.decided_at_samples)
            elif kind == "probability":
                latency(resp.probability.window_end_samples)
            elif kind == "turn":  # pause decided -> score received (model time + batching + queueing)
                run.count("turn_scores")
                latency(resp.turn.decided_at_samples, "turn_latency_ms")
            elif kind == "problem":
                run.count("problems")
        await task
    finally:
        task.cancel()


async def baseline_stream(i: int, run: LoadRun, model: SileroModel, chunk_ms: float) -> None:
    """Per-session Silero in-process: the stream's own session, called inline per window."""
    rec = run.recording(i)
    state = StreamState(rec.rate)
    buf = np.zeros(0, np.int16)
    async for _, pcm in run.paced(rec, chunk_ms=chunk_ms, start_s=(i * 1.37) % rec.seconds):
        buf = np.concatenate([buf, pcm_to_int16(pcm)])
        while len(buf) >= WINDOW:
            model.step(state, buf[:WINDOW])
            buf = buf[WINDOW:]
            run.count("windows")


def hot_loop_cpu_ms_per_stream_second(seconds: float = 20.0) -> float:
    """Best case for per-session Silero: one session, windows back to back (caches hot)."""
    rec = load_recordings()[0]
    model, state = SileroModel(), StreamState(rec.rate)
    n = min(len(rec.samples), int(seconds * rec.rate)) // WINDOW
    cpu0 = time.process_time()
    for k in range(n):
        model.step(state, rec.samples[k * WINDOW:(k + 1) * WINDOW])
    return 1000 * (time.process_time() - cpu0) / (n * WINDOW / rec.rate)


async def measure_baseline(streams: int, seconds: float, chunk_ms: float) -> dict[str, Any]:
    """`streams` sessions paced in real time in this process (the deployment shape), plus the
    hot-loop best case, both as CPU ms per second of audio of one stream."""
    models = [SileroModel() for _ in range(streams)]
    cpu0 = time.process_time()
    summary = await run_load(lambda i, run: baseline_stream(i, run, models[i], chunk_ms),
                             streams=streams, seconds=seconds, progress=False)
    cpu = time.process_time() - cpu0
    stream_seconds = summary.get("windows", 0) * WINDOW / 16000
    return {"streams": streams, "cpu_s": round(cpu, 3), "stream_seconds": round(stream_seconds, 1),
            "cpu_ms_per_stream_second": round(1000 * cpu / max(stream_seconds, 1e-9), 3),
            "hot_loop_cpu_ms_per_stream_second": round(hot_loop_cpu_ms_per_stream_second(), 3)}


async def main_async(args: Any) -> dict[str, Any]:
    proc: ServiceProcess | None = None
    target = args.target
    if not target:
        proc = ServiceProcess("vad", env={"VAD_MAX_STREAMS": str(max(1000, args.streams)), "LOG_LEVEL": "WARNING"})
        proc.start()
        target = proc.address
        if args.pin_cpu is not None:
            pin(proc.pid, args.pin_cpu)
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            cpu0 = time.process_time()
            summary = await run_load(
                lambda i, run: detect_stream(i, run, channel, args.chunk_ms, args.probabilities, args.turn_scoring),
                streams=args.streams, seconds=args.seconds, pid=proc.pid if proc else None,
                progress=not args.quiet, ramp_s=min(2.0, args.seconds / 4))
            driver_cpu = time.process_time() - cpu0
    finally:
        if proc is not None:
            proc.stop()
    samples = summary.pop("samples_sent", 0)
    stream_seconds = samples / 16000
    summary["chunk_ms"] = args.chunk_ms
    summary["windows_per_s"] = round(samples / WINDOW / summary["seconds"], 1)
    summary["driver_cpu_pct"] = round(100 * driver_cpu / summary["seconds"], 1)
    if "server" in summary and "cpu_pct" in summary["server"]:
        server_cpu = summary["server"]["cpu_pct"] / 100 * summary["seconds"]
        both = 1000 * (server_cpu + driver_cpu) / max(stream_seconds, 1e-9)
        summary["cpu_ms_per_stream_second"] = {"server": round(1000 * server_cpu / max(stream_seconds, 1e-9), 3),
                                               "both_sides": round(both, 3)}
        if args.baseline_streams:
            base = await measure_baseline(args.baseline_streams, min(args.seconds, 20), args.chunk_ms)
            summary["baseline_per_session_silero"] = base
            summary["cpu_ratio_both_sides_vs_per_session"] = round(both / base["cpu_ms_per_stream_second"], 3)
            summary["cpu_ratio_both_sides_vs_hot_loop"] = round(both / base["hot_loop_cpu_ms_per_stream_second"], 3)
    return summary


def main() -> None:
    p = arg_parser("python -m tests.load.vad", "Vad.Detect load: N real-time streams of real recordings")
    p.add_argument("--probabilities", action="store_true", help="ask for per-window probabilities and measure "
                   "the latency of every window instead of only events")
    p.add_argument("--turn-scoring", action="store_true", help="turn scoring on in every stream (Smart Turn "
                   "scores each 200 ms pause; TurnScore latency reported as turn_latency_ms)")
    p.add_argument("--pin-cpu", type=int, default=None, help="pin the service process to this CPU (one core)")
    p.add_argument("--pin-driver", type=int, default=None, help="pin this driver (and its baseline) to this CPU")
    p.add_argument("--baseline-streams", type=int, default=50,
                   help="streams in the per-session in-process Silero baseline (0: skip)")
    args = p.parse_args()
    if args.pin_driver is not None:
        os.sched_setaffinity(0, {args.pin_driver})  # before any thread starts: they inherit it
    emit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
