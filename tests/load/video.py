"""Load driver for the video service: N candidates sharing their screen in SCREEN_FOCUS mode.

Each stream replays a rendered coding session (an editor at 1920x1080 where code is typed in
bursts of 3-5 characters a second, idle <= 40 % of the time, a blinking cursor) at --fps, paced in
real time, to a real service process. Measured: frames in, kept by rate sampling, skipped as
unchanged, analysed, sent to the model; analysis latency (frame reached the service -> its
observation received, from Observation.time); the service's CPU including its tesseract children;
and for the cost goal, frames sent to Gemini vs a naive 2 fps and the estimated USD.

    python -m tests.load.video --streams 4 --seconds 60 --provider offline
    python -m tests.load.video --streams 4 --seconds 60 --provider gemini-fake
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from interview.v1 import common_pb2, video_pb2, video_pb2_grpc
from services.video.cost import TOKENS_PER_FRAME, TOKENS_PER_FRAME_LOW, CostMeter
from tests.load.harness import LoadRun, arg_parser, emit, run_load
from tests.support.procs import ServiceProcess
from tests.video.screens import coding_session, idle_fraction

BENCH = [
    ["--streams", "1", "--seconds", "60", "--provider", "offline"],
    ["--streams", "4", "--seconds", "60", "--provider", "offline"],
    ["--streams", "8", "--seconds", "60", "--provider", "offline"],
    ["--streams", "4", "--seconds", "120", "--provider", "gemini-fake"],
]
NAIVE_FPS = 2.0
STATS_FIELDS = ("frames_received", "frames_sampled", "frames_skipped_rate", "frames_skipped_unchanged",
                "frames_analyzed", "frames_sent_to_model", "model_turns", "observations_sent")


def _cpu_s(pid: int) -> float:
    """utime + stime + reaped children's (tesseract) cutime + cstime, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def project_usd(seconds: float, frames_per_s: float, turns_per_s: float, tokens_per_frame: int,
                context_cap: int) -> float:
    """USD of one stream over `seconds` at steady rates, billed like the service estimates it
    (every turn bills the context, up to `context_cap`). A linear extrapolation of a short run
    would miss that the context keeps growing until compression caps it."""
    meter = CostMeter(tokens_per_frame=tokens_per_frame, window_tokens=context_cap)
    frames = turns = 0.0
    for _ in range(int(seconds)):
        frames += frames_per_s
        turns += turns_per_s
        while frames >= 1:
            meter.frame_sent(video_pb2.SAMPLING_SCREEN_FOCUS)
            frames -= 1
        while turns >= 1:
            meter.turn(video_pb2.SAMPLING_SCREEN_FOCUS, 20, 40)
            turns -= 1
    return sum(m.usd for m in meter.by_mode.values())


def naive_usd(seconds: float, tick_s: float) -> float:
    """Every frame at 2 fps and default resolution, a turn every tick, the Live API's default
    32 k context window and no compression settings."""
    return project_usd(seconds, NAIVE_FPS, 1 / tick_s, TOKENS_PER_FRAME, 32_000)


def make_stream(stub: video_pb2_grpc.VideoStub, session: list[tuple[int, bytes]], fps: float):
    async def one_stream(i: int, run: LoadRun) -> None:
        start = (i * 37) % max(1, len(session))  # streams are at different points of the session

        async def requests() -> AsyncIterator[video_pb2.AnalyzeRequest]:
            yield video_pb2.AnalyzeRequest(config=video_pb2.VideoConfig(
                consent=common_pb2.VideoConsent(screen=True), sampling=video_pb2.SAMPLING_SCREEN_FOCUS,
                role="backend engineer", stream_id=f"load-{i}"))
            t0 = time.monotonic()
            n = 0
            while not run.done():
                time_ms, data = session[(start + n) % len(session)]
                yield video_pb2.AnalyzeRequest(frame=common_pb2.VideoFrame(
                    jpeg=data, source=common_pb2.VIDEO_SOURCE_SCREEN, time_ms=int(n * 1000 / fps)))
                n += 1
                delay = t0 + n / fps - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.1:
                    run.count("pacing_late")

        async for r in stub.Analyze(requests()):
            kind = r.WhichOneof("msg")
            if kind == "observation":
                run.count("observations")
                run.hist("analysis_latency_ms").add(time.time() * 1000 - r.observation.time.ToMilliseconds())
            elif kind == "problem":
                run.count("problems")
            elif kind == "stats":
                for name in STATS_FIELDS:
                    run.count(name, getattr(r.stats, name))
                run.count("est_usd_micro", int(r.stats.est_usd * 1e6))
                run.count("est_input_tokens", r.stats.est_input_tokens)
                if r.stats.fell_back:
                    run.count("fell_back")

    return one_stream


async def main(argv: list[str] | None = None) -> None:
    p = arg_parser("python -m tests.load.video", __doc__.splitlines()[0])
    p.add_argument("--provider", choices=("offline", "gemini-fake"), default="offline")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second each stream sends")
    p.add_argument("--ocr-workers", type=int, default=1)
    args = p.parse_args(argv)
    t = time.perf_counter()
    session = coding_session(max(10.0, min(args.seconds, 300.0)), args.fps)
    render_s = time.perf_counter() - t
    env = {"VIDEO_PROVIDERS": "offline", "VIDEO_OCR_WORKERS": str(args.ocr_workers), "LOG_LEVEL": "WARNING"}
    fake = None
    tmp = tempfile.TemporaryDirectory()
    tick_s = 10.0
    if args.provider == "gemini-fake":
        from tests.fakes.gemini_live import API_KEY, FakeGeminiLive, make_cert

        cert, key = make_cert(Path(tmp.name))
        fake = await FakeGeminiLive(cert, key).start()
        fake.replies = [['{"observations": [{"type": "code_observation", "detail": "Python code defining '
                         'two_sum using a dict lookup", "confidence": 0.8}]}']] * 100000
        env.update({"VIDEO_PROVIDERS": "gemini,offline", "GEMINI_API_KEY": API_KEY, "SSL_CERT_FILE": str(cert),
                    "VIDEO_GEMINI_BASE_URL": fake.base_url, "VIDEO_GEMINI_TICK_S": str(tick_s)})
    service = ServiceProcess("video", env=env).start() if not args.target else None
    target = args.target or service.address  # type: ignore[union-attr]
    channel = grpc.aio.insecure_channel(target)
    try:
        stub = video_pb2_grpc.VideoStub(channel)
        cpu0, w0 = (_cpu_s(service.pid), time.monotonic()) if service else (0.0, time.monotonic())
        summary = await run_load(make_stream(stub, session, args.fps), streams=args.streams,
                                 seconds=args.seconds, pid=service.pid if service else None,
                                 progress=not args.quiet)
        if service:
            summary["cpu_pct_with_ocr_children"] = round(100 * (_cpu_s(service.pid) - cpu0) /
                                                         (time.monotonic() - w0), 1)
    finally:
        await channel.close()
        if service:
            service.stop()
        if fake:
            await fake.stop()
        tmp.cleanup()
    summary["provider"] = args.provider
    summary["fps_sent"] = args.fps
    summary["session_idle_fraction"] = round(idle_fraction(args.seconds), 3)
    summary["render_s"] = round(render_s, 1)
    naive = NAIVE_FPS * args.seconds * args.streams
    summary["sent_vs_naive_2fps"] = round(summary.get("frames_sent_to_model", 0) / naive, 4)
    if args.provider == "gemini-fake":
        usd = summary.pop("est_usd_micro", 0) / 1e6 / args.streams
        summary["est_usd_per_stream"] = round(usd, 5)
        per_stream_s = args.streams * args.seconds
        summary["est_usd_per_45min"] = round(project_usd(
            2700, summary.get("frames_sent_to_model", 0) / per_stream_s, summary.get("model_turns", 0) / per_stream_s,
            TOKENS_PER_FRAME_LOW, 4000), 4)
        summary["naive_2fps_usd_per_45min"] = round(naive_usd(2700, tick_s), 4)
        if fake:
            summary["fake_frames"] = len(fake.frames)
            summary["fake_connections"] = fake.connections
    emit(summary)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
