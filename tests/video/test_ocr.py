"""Offline OCR accuracy on rendered 1920x1080 editor frames after JPEG and the 1280 px scaler:
identifier recall >= 90 % in dark and light themes, with and without a line-number gutter; and
descriptions of code, a terminal traceback and a search page."""
from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from interview.v1 import common_pb2
from services.video import frames
from services.video.providers.describe import describe
from services.video.providers.ocr import Tesseract, strip_gutter
from tests.video.screens import DARK, LIGHT, LRU, MERGE, TRACEBACK, TWO_SUM, browser, editor, identifiers, jpeg, terminal

SCREEN = common_pb2.VIDEO_SOURCE_SCREEN


_EXECUTOR = ThreadPoolExecutor(2)


async def _read(img, quality: int = 75, ocr: Tesseract | None = None) -> str:
    d = frames.decode(jpeg(img, quality), SCREEN, 10**8)  # as a WebRTC frame would arrive, then scaled
    assert max(d.image.size) == 1280
    return await (ocr or Tesseract(_EXECUTOR, timeout_s=60)).read(d.image)


async def test_identifier_recall_dark_light_gutter() -> None:
    cases = [(code, theme, gutter, px) for code, px in ((TWO_SUM, 16), (LRU, 14), (MERGE, 18))
             for theme in (DARK, LIGHT) for gutter in (True, False)]
    ocr = Tesseract(_EXECUTOR, workers=2, timeout_s=60)
    texts = await asyncio.gather(*[_read(editor(code, theme, gutter=gutter, font_px=px), ocr=ocr)
                                   for code, theme, gutter, px in cases])
    per_case = []
    total = found = 0
    for (code, theme, gutter, px), text in zip(cases, texts):
        body, _ = strip_gutter(text)
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", body))
        ids = identifiers(code)
        hit = len(ids & words)
        per_case.append((theme.name, gutter, px, hit / len(ids), sorted(ids - words)))
        total += len(ids)
        found += hit
    assert found / total >= 0.90, per_case
    assert all(r >= 0.8 for _, _, _, r, _ in per_case), per_case


async def test_gutter_stripped_and_lines_counted() -> None:
    text = await _read(editor(TWO_SUM, DARK, gutter=True))
    body, span = strip_gutter(text)
    assert span == (1, 14)
    assert not re.search(r"^\s*\d+\s+def two_sum", body, re.M)
    (d,) = describe(body, span)
    assert d.type.value == "code_observation"
    assert "two_sum" in d.detail and "dict lookup" in d.detail and "14 lines" in d.detail, d.detail


@pytest.mark.parametrize("img,expect", [
    (terminal(TRACEBACK), "a terminal showing a Python traceback: KeyError"),
    (browser("two sum python", ["Two Sum - LeetCode", "Two Sum in Python - GeeksforGeeks"]), "search results"),
])
async def test_terminal_and_browser(img, expect: str) -> None:
    body, span = strip_gutter(await _read(img))
    (d,) = describe(body, span)
    assert d.type.value == "screen_content" and expect in d.detail, d.detail
