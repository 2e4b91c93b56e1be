"""JPEG frames: decoding and scaling, run in an executor.

The header is read first (a few hundred bytes, no pixel data) so an oversized or garbage frame is
refused before any pixel is decoded. libjpeg's DCT scaling (`draft`) decodes a 1920x1080 screen straight at
half size, so scaling costs less than decoding at full size. Pixels live only in memory."""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from interview.v1 import common_pb2

# Long side after scaling, by source (a screen needs text legible; a camera needs little).
MAX_SIDE = {common_pb2.VIDEO_SOURCE_SCREEN: 1280, common_pb2.VIDEO_SOURCE_CAMERA: 720}
DETECT_WIDTH = 640  # the grayscale image change detection compares (>= 256 px, typing visible)

INVALID_ARGUMENT, RESOURCE_EXHAUSTED = 3, 8


class FrameError(Exception):
    """A frame refused in-band: `code` is the gRPC status code put in the Problem."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Decoded:
    image: Image.Image  # RGB, long side <= MAX_SIDE[source]
    gray: np.ndarray    # uint8, DETECT_WIDTH wide (or narrower if the frame is)
    width: int          # as sent
    height: int

    @property
    def scaled(self) -> bool:
        return self.image.size != (self.width, self.height)


def encode(img: Image.Image, quality: int = 80) -> bytes:
    """Re-encode a scaled frame for a cloud model (in an executor, only when it was scaled)."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _open(jpeg: bytes) -> Image.Image:
    try:
        img = Image.open(io.BytesIO(jpeg), formats=("JPEG",))
    except Image.DecompressionBombError as exc:  # a header claiming an enormous image
        raise FrameError(RESOURCE_EXHAUSTED, f"frame refused: {exc}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise FrameError(INVALID_ARGUMENT, f"not a JPEG image ({len(jpeg)} bytes): {exc}") from None
    return img


def decode(jpeg: bytes, source: int, max_pixels: int) -> Decoded:
    """Decode, scale (long side <= 1280 screen / 720 camera) and derive the detection image.
    Runs in an executor: Pillow releases the GIL while decoding and resizing."""
    img = _open(jpeg)
    w, h = img.size
    if w * h > max_pixels:
        raise FrameError(RESOURCE_EXHAUSTED, f"frame is {w}x{h} pixels, over the cap of {max_pixels}")
    side = MAX_SIDE.get(source, 1280)
    scale = min(1.0, side / max(w, h))
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    try:
        img.draft("RGB", target)  # DCT-domain downscale while decoding (>= target)
        img = img.convert("RGB")
    except (OSError, ValueError, SyntaxError) as exc:
        raise FrameError(INVALID_ARGUMENT, f"JPEG could not be decoded: {exc}") from None
    if img.size != target:
        img = img.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    dw = min(DETECT_WIDTH, img.width)
    gray = img.convert("L")
    if dw != img.width:
        gray = gray.resize((dw, max(1, round(img.height * dw / img.width))), Image.Resampling.BOX)
    return Decoded(img, np.asarray(gray), w, h)
