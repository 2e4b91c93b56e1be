"""Wiring of the video service: providers (Gemini Live when a key is set, then offline OCR) behind
circuit breakers, the shared decode executor, and health (SERVING only while a provider works)."""
from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor

from grpc_health.v1 import health_pb2

from interview.v1 import video_pb2, video_pb2_grpc
from services.common.fallback import BreakerState, ProviderChain
from services.common.server import ServiceRuntime
from services.video.config import VideoConfig
from services.video.providers.base import Provider
from services.video.providers.ocr import Tesseract
from services.video.providers.offline import OfflineProvider
from services.video.servicer import VideoServicer
from services.video.session import Limits

log = logging.getLogger("video")
SERVICE = video_pb2.DESCRIPTOR.services_by_name["Video"].full_name
HEALTH_INTERVAL_S = 10.0


def make_servicer(cfg: VideoConfig, only: str = "") -> tuple[VideoServicer, list[Provider], ThreadPoolExecutor]:
    """The servicer, its providers and executor (the caller closes them); shared by server and CLI."""
    executor = ThreadPoolExecutor(cfg.decode_workers, thread_name_prefix="video-decode")
    ocr = Tesseract(executor, workers=cfg.ocr_workers, timeout_s=cfg.ocr_timeout_s, nice=cfg.ocr_nice)
    offline = OfflineProvider(ocr, min_interval_s=cfg.ocr_min_interval_s, dark_luma=cfg.camera_dark_luma,
                              frozen_s=cfg.camera_frozen_s, settle_s=cfg.screen_settle_s)
    providers: list[tuple[str, Provider]] = []
    for name in ([only] if only else cfg.providers):
        if name == "gemini":
            if not cfg.gemini_api_key:
                log.info("gemini skipped: GEMINI_API_KEY is not set")
                continue
            from services.video.providers.gemini_live import GeminiLiveProvider

            providers.append((name, GeminiLiveProvider.from_config(cfg)))
        elif name == "offline":
            pass  # always last: the analyser every stream can fall back to
        else:
            raise ValueError(f"VIDEO_PROVIDERS: unknown provider {name!r} (use gemini, offline)")
    providers.append(("offline", offline))
    chain: ProviderChain[Provider] = ProviderChain(providers, failure_threshold=cfg.breaker_failures,
                                                   cooldown_s=cfg.breaker_cooldown_s)
    # The frame cap stays below the transport's limit, so an oversized frame gets an in-band
    # Problem instead of the transport ending the whole stream.
    max_frame = min(cfg.max_frame_bytes, cfg.server.max_message_bytes - 64 * 1024)
    limits = Limits(max_frame, cfg.max_frame_pixels)
    return VideoServicer(chain, executor, limits), [p for _, p in providers], executor


async def any_provider_works(chain: ProviderChain[Provider]) -> bool:
    """A provider works when its breaker is not open and its own check passes (tesseract runs;
    Gemini has a key)."""
    for name in chain.names:
        if chain.breakers[name].state is BreakerState.OPEN:
            continue
        with contextlib.suppress(Exception):
            if await chain.get(name).healthy():
                return True
    return False


async def build(cfg: VideoConfig, runtime: ServiceRuntime) -> None:
    servicer, providers, executor = make_servicer(cfg)
    runtime.add(SERVICE, video_pb2_grpc.add_VideoServicer_to_server, servicer)

    async def check_health() -> None:
        ok = await any_provider_works(servicer.chain)
        status = health_pb2.HealthCheckResponse.SERVING if ok else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE):
            await runtime.health.set(name, status)
        if not ok:
            log.error("no video provider works (is tesseract installed? GEMINI_API_KEY?)")

    async def watch_health() -> None:
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_S)
            await check_health()

    health_task: asyncio.Task[None] | None = None

    async def started() -> None:
        nonlocal health_task
        await check_health()
        health_task = asyncio.create_task(watch_health(), name="video-health")

    async def close() -> None:
        if health_task is not None:
            health_task.cancel()
        for provider in providers:
            await provider.aclose()
        executor.shutdown(wait=False, cancel_futures=True)

    runtime.on_started(started)
    runtime.on_shutdown(close)
    log.info("video ready", extra={"providers": ",".join(servicer.chain.names)})
