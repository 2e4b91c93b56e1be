"""An in-process video server (real servicer, real tesseract, real gRPC on loopback) per test."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable

import grpc
import pytest

from interview.v1 import common_pb2, video_pb2, video_pb2_grpc
from services.common import config
from services.common.server import ServiceRuntime
from services.video.config import VideoConfig
from services.video.service import build
from tests.support.procs import free_port

StartServer = Callable[..., Awaitable[video_pb2_grpc.VideoStub]]
SCREEN, CAMERA = common_pb2.VIDEO_SOURCE_SCREEN, common_pb2.VIDEO_SOURCE_CAMERA


@pytest.fixture
async def video_server() -> AsyncIterator[StartServer]:
    runtimes: list[ServiceRuntime] = []
    channels: list[grpc.aio.Channel] = []

    async def start(**environ: str) -> video_pb2_grpc.VideoStub:
        env = {"VIDEO_PORT": str(free_port()), "VIDEO_PROVIDERS": "offline", "VIDEO_OCR_MIN_INTERVAL_S": "0", **environ}
        cfg = config.load(VideoConfig, "video", env)
        runtime = ServiceRuntime("video", cfg.server)
        await build(cfg, runtime)
        port = await runtime.start()
        runtimes.append(runtime)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        stub = video_pb2_grpc.VideoStub(channel)
        stub.channel = channel  # type: ignore[attr-defined]
        stub.runtime = runtime  # type: ignore[attr-defined]
        return stub

    yield start
    for channel in channels:
        await channel.close()
    for runtime in runtimes:
        await runtime.stop(0)


def cfg(screen: bool = True, camera: bool = False, mode: int = video_pb2.SAMPLING_SCREEN_FOCUS,
        provider: str = "") -> video_pb2.AnalyzeRequest:
    return video_pb2.AnalyzeRequest(config=video_pb2.VideoConfig(
        consent=common_pb2.VideoConsent(screen=screen, camera=camera), sampling=mode, role="backend engineer",
        provider=provider, stream_id="t1"))


def frame(jpeg: bytes, time_ms: int, source: int = SCREEN) -> video_pb2.AnalyzeRequest:
    return video_pb2.AnalyzeRequest(frame=common_pb2.VideoFrame(jpeg=jpeg, source=source, time_ms=time_ms))


async def run(stub: video_pb2_grpc.VideoStub, requests: Iterable[video_pb2.AnalyzeRequest], gap_s: float = 0.0,
              ) -> tuple[list[common_pb2.Observation], list[common_pb2.Problem], video_pb2.VideoStats,
                         list[common_pb2.ProviderEvent]]:
    async def gen() -> AsyncIterator[video_pb2.AnalyzeRequest]:
        for r in requests:
            yield r
            if gap_s:
                await asyncio.sleep(gap_s)

    obs, problems, events = [], [], []
    stats = video_pb2.VideoStats()
    async for r in stub.Analyze(gen(), timeout=60):
        kind = r.WhichOneof("msg")
        if kind == "observation":
            obs.append(r.observation)
        elif kind == "problem":
            problems.append(r.problem)
        elif kind == "stats":
            stats = r.stats
        elif kind == "provider_event":
            events.append(r.provider_event)
    return obs, problems, stats, events
