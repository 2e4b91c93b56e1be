"""The offline analyser reads a changed screen once more when it has stayed still (a WebRTC
encoder sends a still screen blurry first and sharpens it over the next frames)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from interview.v1 import common_pb2
from services.video.frames import Decoded
from services.video.providers.base import Frame, StreamContext
from services.video.providers.offline import OfflineAnalyser, OfflineProvider

SCREEN = common_pb2.VIDEO_SOURCE_SCREEN


def frame(t_ms: int) -> Frame:
    return Frame(SCREEN, t_ms, Decoded(Image.new("RGB", (8, 8)), np.zeros((8, 8), np.uint8), 8, 8))


def analyser(settle_s: float) -> OfflineAnalyser:
    provider = OfflineProvider(ocr=None, settle_s=settle_s)  # type: ignore[arg-type]  (no OCR run here)
    return OfflineAnalyser(provider, StreamContext("s", "", 0, lambda c: None))


def test_a_still_screen_is_read_once_more_after_settle_s_then_not_again() -> None:
    a = analyser(2.0)
    changed = frame(1_000)
    a.submit(changed)
    a._pending = None  # as if that change was OCR'd
    a.still(frame(2_500))  # still for 1.5 s: not yet
    assert a._pending is None
    settled = frame(3_000)
    a.still(settled)
    assert a._pending is settled and a._wake.is_set()
    a._pending = None
    a.still(frame(9_000))  # one re-read per change
    assert a._pending is None
    a.submit(frame(10_000))
    a._pending = None
    a.still(frame(12_000))
    assert a._pending is not None  # the next change gets its own


def test_no_reread_when_off_or_after_consent_withdrawn_and_a_pending_change_is_replaced() -> None:
    off = analyser(0.0)
    off.submit(frame(0))
    off._pending = None
    off.still(frame(60_000))
    assert off._pending is None
    a = analyser(2.0)
    a.submit(frame(0))
    a.drop_source(SCREEN)
    a.still(frame(5_000))
    assert a._pending is None
    b = analyser(2.0)
    b.submit(frame(0))
    b.submit(frame(4_000))  # not yet OCR'd (the interval): the same screen, still, is the better read
    settled = frame(7_000)
    b.still(settled)
    assert b._pending is settled


def test_a_reread_that_recognises_less_than_the_read_before_reports_nothing() -> None:
    seen: list[str] = []
    a = OfflineAnalyser(OfflineProvider(ocr=None), StreamContext("s", "", 0, lambda c: seen.append(c.detail)))  # type: ignore[arg-type]
    full = "def two_sum(nums, target):\n    seen = {}\n    for i, v in enumerate(nums):\n        if v in seen:\n            return [seen[v], i]\n        seen[v] = i\n"
    a.analyse_text(full, 1_000)
    worse = full.replace("{}", "(}").replace("seen[", "seen(")  # braces misread
    a.analyse_text(worse, 4_000, reread=True)
    assert len(seen) == 1 and "two_sum" in seen[0]
    blurry = "def testtwosum(nums, target):\n    pass\n"
    b = OfflineAnalyser(OfflineProvider(ocr=None), StreamContext("s", "", 0, lambda c: seen.append(c.detail)))  # type: ignore[arg-type]
    seen.clear()
    b.analyse_text(blurry, 1_000)
    b.analyse_text(full, 4_000, reread=True)  # the sharper read recognises more: it reports
    assert len(seen) == 2 and "two_sum" in seen[1]
