"""The offline analyser (default): OCR of the shared screen, cheap signals from the camera.

SCREEN: only changed frames reach it; it keeps the newest one and OCRs it at most once per
`ocr_min_interval_s`, never a backlog. Once a changed screen has then stayed still for `settle_s`,
the still frame is read once more: a WebRTC encoder sends a still screen blurry first and sharpens
it over the next frames (too little to count as a change), and OCR of the first frames loses
underscores and dots. CAMERA: covered/dark and frozen-picture signals from the
grayscale image the decoder already made. Only text leaves; frames are dropped after use."""
from __future__ import annotations

import asyncio
import logging
import time

import numpy as np

from interview.v1 import common_pb2
from services.video.change import compare
from services.video.observations import Candidate, ObsType
from services.video.providers.base import Frame, Provider, StreamAnalyser, StreamContext
from services.video.providers.describe import describe, richness
from services.video.providers.ocr import Tesseract, strip_gutter

log = logging.getLogger("video.offline")
SCREEN, CAMERA = common_pb2.VIDEO_SOURCE_SCREEN, common_pb2.VIDEO_SOURCE_CAMERA


class OfflineProvider(Provider):
    name = "offline"

    def __init__(self, ocr: Tesseract, *, min_interval_s: float = 3.0, dark_luma: float = 20.0,
                 frozen_s: float = 60.0, settle_s: float = 2.0):
        self.ocr = ocr
        self.settle_s = settle_s
        self.min_interval_s = min_interval_s
        self.dark_luma = dark_luma
        self.frozen_s = frozen_s

    def open(self, ctx: StreamContext) -> "OfflineAnalyser":
        return OfflineAnalyser(self, ctx)

    async def healthy(self) -> bool:
        return await Tesseract.available()


class OfflineAnalyser(StreamAnalyser):
    def __init__(self, provider: OfflineProvider, ctx: StreamContext):
        self.p = provider
        self.ctx = ctx
        self._pending: Frame | None = None
        self._wake = asyncio.Event()
        self._busy = False
        self._last_ocr = -1e9
        self._last_detail: dict[str, str] = {}
        self._camera_prev: np.ndarray | None = None
        self._camera_changed_ms: int | None = None
        self._camera_state = ""  # "", "dark", "frozen"
        self.ocr_failures = 0
        self._edits: list[int] = []  # capture times of small screen changes (typing-sized)
        self._settle_from: int | None = None  # capture time of the last change, until its settled re-read
        self._reread: Frame | None = None  # the pending frame is a re-read of an unchanged screen
        self._last_richness = 0  # what the last read recognised (describe.richness)

    def submit(self, frame: Frame) -> None:
        if frame.source == SCREEN:
            self._pending = frame  # the newest replaces any older one: never a backlog
            self._settle_from, self._reread = frame.time_ms, None
            self._activity(frame)
            self._wake.set()
        elif frame.source == CAMERA:
            self._camera(frame)

    def still(self, frame: Frame) -> None:
        """One more read of a screen that has stayed still `settle_s` since its last change."""
        if (frame.source != SCREEN or self._settle_from is None or self.p.settle_s <= 0
                or frame.time_ms - self._settle_from < self.p.settle_s * 1000):
            return
        self._settle_from = None
        self._pending = self._reread = frame  # same content as a pending change, sharper: it replaces it
        self._wake.set()

    def drop_source(self, source: int) -> None:
        if source == SCREEN:
            self._pending = None
            self._settle_from = None
        elif source == CAMERA:
            self._camera_prev = None
            self._camera_changed_ms = None

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            wait = self._last_ocr + self.p.min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # newer frames replace the pending one meanwhile
            await self._analyse_pending()

    async def drain(self) -> None:
        while self._busy:
            await asyncio.sleep(0.02)
        await self._analyse_pending()

    async def _analyse_pending(self) -> None:
        frame, self._pending = self._pending, None
        if frame is None:
            return
        self._busy = True
        self._last_ocr = time.monotonic()
        try:
            text = await self.p.ocr.read(frame.decoded.image)
        except (asyncio.TimeoutError, OSError, RuntimeError) as exc:  # one failed OCR is not the stream's end
            self.ocr_failures += 1
            log.warning("ocr failed; the next changed frame is tried", extra={"error": f"{type(exc).__name__}: {exc}"[:200]})
            return
        finally:
            self._busy = False
        self.analyse_text(text, frame.time_ms, reread=frame is self._reread)

    def analyse_text(self, text: str, time_ms: int, reread: bool = False) -> None:
        """`reread`: the same screen read again once still; it reports only if it recognised at
        least as much as the read before (OCR of near-identical frames varies)."""
        body, span = strip_gutter(text)
        score = richness(body)
        if reread and score < self._last_richness:
            return
        self._last_richness = score
        for d in describe(body, span):
            self._emit(d.type, d.detail, d.confidence, SCREEN, time_ms)

    def _emit(self, kind: ObsType, detail: str, confidence: float, source: int, time_ms: int) -> None:
        if self._last_detail.get(kind.value) == detail:
            return  # the same thing again is not news
        self._last_detail[kind.value] = detail
        self.ctx.emit(Candidate(kind.value, detail, confidence, source, time_ms))

    def _activity(self, frame: Frame) -> None:
        """Typing vs a scroll or window switch, from where the screen changed (not why)."""
        change = frame.change
        if change is None or change.blocks < 0:
            return
        if change.significant:
            self._edits.clear()
            self._emit(ObsType.SCREEN_ACTIVITY, "large screen change (scroll or window switch)", 0.7, SCREEN,
                       frame.time_ms)
            return
        self._edits = [t for t in self._edits if frame.time_ms - t <= 10_000] + [frame.time_ms]
        if len(self._edits) >= 4:
            self._emit(ObsType.SCREEN_ACTIVITY, "typing: small edits on screen for several seconds", 0.7, SCREEN,
                       frame.time_ms)

    def _camera(self, frame: Frame) -> None:
        gray = frame.decoded.gray
        mean, std = float(gray.mean()), float(gray.std())
        if mean < self.p.dark_luma and std < 12:
            state = "dark"
        else:
            if self._camera_prev is None or compare(self._camera_prev, gray).changed:
                self._camera_changed_ms = frame.time_ms
            self._camera_prev = gray
            frozen = self._camera_changed_ms is not None and \
                frame.time_ms - self._camera_changed_ms >= self.p.frozen_s * 1000
            state = "frozen" if frozen else ""
        if state != self._camera_state:
            self._camera_state = state
            detail = {"dark": "camera appears covered or dark",
                      "frozen": f"camera image has not changed for {self.p.frozen_s:.0f} s",
                      "": "camera picture visible and changing again"}[state]
            self._emit(ObsType.CAMERA_STATE, detail, 0.9, CAMERA, frame.time_ms)
