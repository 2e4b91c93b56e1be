"""Sampling rates, change detection on rendered screens, scaling, redaction."""
from __future__ import annotations

import pytest
from PIL import Image

from interview.v1 import common_pb2, video_pb2
from services.video import frames
from services.video.change import compare
from services.video.redact import clean, redact
from services.video.sampling import RateSampler
from tests.video.screens import DARK, LIGHT, TWO_SUM, editor, jpeg

SCREEN, CAMERA = common_pb2.VIDEO_SOURCE_SCREEN, common_pb2.VIDEO_SOURCE_CAMERA


@pytest.mark.parametrize("mode,source,fps", [
    (video_pb2.SAMPLING_SCREEN_FOCUS, SCREEN, 2.0), (video_pb2.SAMPLING_SCREEN_FOCUS, CAMERA, 0.5),
    (video_pb2.SAMPLING_NORMAL, SCREEN, 1.0), (video_pb2.SAMPLING_NORMAL, CAMERA, 1.0),
    (video_pb2.SAMPLING_LOW, SCREEN, 0.5), (video_pb2.SAMPLING_OFF, SCREEN, 0.0)])
def test_rates_per_mode_and_source(mode: int, source: int, fps: float) -> None:
    s = RateSampler(mode)
    kept = sum(s.admit(source, t) for t in range(0, 60_000, 66))  # a 15 fps source for a minute
    assert abs(kept - fps * 60) <= 1


def test_sampling_per_source_and_clock_reset() -> None:
    s = RateSampler(video_pb2.SAMPLING_SCREEN_FOCUS)
    assert s.admit(SCREEN, 1000) and s.admit(CAMERA, 1000)
    assert not s.admit(SCREEN, 1100)
    assert s.admit(SCREEN, 10)  # the capture clock went backwards (a new track): start over


def _gray(img: Image.Image, quality: int = 80) -> "frames.np.ndarray":
    return frames.decode(jpeg(img, quality), SCREEN, 10**8).gray


@pytest.mark.parametrize("theme", [DARK, LIGHT], ids=["dark", "light"])
@pytest.mark.parametrize("font_px", [14, 18])
def test_change_detection_typing_yes_blink_and_reencoding_no(theme, font_px) -> None:
    base = editor(TWO_SUM, theme, font_px=font_px, cursor=(8, 20))
    blink = editor(TWO_SUM, theme, font_px=font_px, cursor=(8, 20), cursor_on=False)
    new_line = editor(TWO_SUM + "print(two_sum([1, 2], 3))\n", theme, font_px=font_px, cursor=(8, 20))
    three_chars = editor(TWO_SUM.replace("    return []", "    return []abc"), theme, font_px=font_px, cursor=(8, 20))
    g = _gray(base)
    assert not compare(g, _gray(base, 60)).changed, "JPEG re-encoding noise"
    assert not compare(g, _gray(base, 95)).changed, "JPEG re-encoding noise"
    assert not compare(g, _gray(blink)).changed, "cursor blink"
    assert compare(g, _gray(new_line)).changed, "a new line of code"
    assert compare(g, _gray(three_chars)).changed, "three typed characters"
    assert not compare(g, _gray(new_line)).significant
    assert compare(g, _gray(editor(TWO_SUM, theme, font_px=font_px, scroll=3))).significant, "a scroll"


def test_detection_image_is_at_least_256_px_and_scaling_caps() -> None:
    d = frames.decode(jpeg(editor(TWO_SUM, DARK)), SCREEN, 10**8)
    assert d.image.size == (1280, 720) and d.gray.shape == (360, 640) and (d.width, d.height) == (1920, 1080)
    cam = frames.decode(jpeg(Image.new("RGB", (1280, 720), (90, 90, 90))), CAMERA, 10**8)
    assert max(cam.image.size) == 720
    small = frames.decode(jpeg(Image.new("RGB", (640, 480))), SCREEN, 10**8)
    assert small.image.size == (640, 480)


def test_garbage_and_pixel_cap() -> None:
    with pytest.raises(frames.FrameError) as err:
        frames.decode(b"GIF89a....", SCREEN, 10**8)
    assert err.value.code == frames.INVALID_ARGUMENT
    with pytest.raises(frames.FrameError) as err:
        frames.decode(jpeg(Image.new("RGB", (3000, 3000)), 30), SCREEN, 4_000_000)
    assert err.value.code == frames.RESOURCE_EXHAUSTED
    # a header claiming 60000x60000 (a decompression bomb) is refused from the header alone
    small = bytearray(jpeg(Image.new("RGB", (16, 16)), 50))
    sof = small.index(b"\xff\xc0")
    small[sof + 5:sof + 9] = (60000).to_bytes(2, "big") * 2
    with pytest.raises(frames.FrameError) as err:
        frames.decode(bytes(small), SCREEN, 4_000_000)
    assert err.value.code == frames.RESOURCE_EXHAUSTED
    truncated = jpeg(editor(TWO_SUM, DARK))[:5000]
    with pytest.raises(frames.FrameError):
        frames.decode(truncated, SCREEN, 10**8)


@pytest.mark.parametrize("text,gone", [
    ("OPENAI_API_KEY = 'sk-proj-Abcdefghijklmnopqrstuvwx12'", "sk-proj"),
    ("mail me at jane.doe+jobs@example.co.uk", "jane.doe"),
    ("key AIzaSyA1234567890abcdefghijklmnopqrstu used", "AIzaSy"),
    ("aws AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("token: ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_"),
    ("Authorization: Bearer abc.def.ghi123456", "abc.def"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig", "eyJhbGci"),
    ('password="hunter22"', "hunter22"),
    ("call +1 415-555-0134 now", "555-0134"),
])
def test_redaction(text: str, gone: str) -> None:
    assert gone not in redact(text)


def test_code_survives_redaction_and_cap() -> None:
    detail = "Python code defining two_sum using a dict lookup, 14 lines"
    assert clean(detail) == detail
    assert len(clean("word " * 100)) <= 200
