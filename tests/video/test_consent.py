"""Withdrawn consent: queued frames of that source are dropped at once, one being decoded is
discarded when its decode returns, and nothing of it reaches the provider."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from interview.v1 import common_pb2, video_pb2
from services.common.fallback import ProviderChain
from services.video.providers.base import Frame, Provider, StreamAnalyser, StreamContext
from services.video.session import Limits, StreamSession
from tests.video.screens import DARK, LIGHT, TWO_SUM, editor, jpeg

SCREEN = common_pb2.VIDEO_SOURCE_SCREEN


class Recorder(Provider, StreamAnalyser):
    name = "recorder"

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.dropped: list[int] = []

    def open(self, ctx: StreamContext) -> StreamAnalyser:
        return self

    def submit(self, frame: Frame) -> None:
        self.frames.append(frame)

    def drop_source(self, source: int) -> None:
        self.dropped.append(source)

    async def run(self) -> None:
        await asyncio.Event().wait()


async def test_withdrawal_drops_queued_and_in_flight_frames() -> None:
    gate = threading.Event()
    with ThreadPoolExecutor(1) as ex:
        ex.submit(gate.wait)  # the decoder is busy: sampled frames queue up
        rec = Recorder()
        config = video_pb2.VideoConfig(consent=common_pb2.VideoConsent(screen=True),
                                       sampling=video_pb2.SAMPLING_SCREEN_FOCUS)
        s = StreamSession(config, ProviderChain([("recorder", rec)]), "recorder", ex,
                          Limits(2 * 1024 * 1024, 10**7), "c1")
        s.start()
        try:
            images = [jpeg(editor(TWO_SUM, DARK)), jpeg(editor(TWO_SUM, LIGHT)), jpeg(editor("", DARK))]
            for i, data in enumerate(images):
                await s.handle(video_pb2.AnalyzeRequest(frame=common_pb2.VideoFrame(
                    jpeg=data, source=SCREEN, time_ms=i * 1000)))
            await asyncio.sleep(0.05)  # the first is now waiting for the decoder, two are queued
            await s.handle(video_pb2.AnalyzeRequest(update=video_pb2.VideoModeUpdate(
                consent=common_pb2.VideoConsent(screen=False))))
            assert s.stats.frames_dropped_withdrawn == 2 and rec.dropped == [SCREEN]  # at once
            gate.set()
            for _ in range(100):
                if s.stats.frames_dropped_withdrawn == 3:
                    break
                await asyncio.sleep(0.02)
            assert s.stats.frames_dropped_withdrawn == 3 and s.stats.frames_analyzed == 0
            assert rec.frames == []
        finally:
            gate.set()
            await s.aclose()
