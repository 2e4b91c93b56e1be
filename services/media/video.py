"""Camera / screen frames up: at most `fps` per source, scaled to a max long side, JPEG encoded in an
executor (never on the event loop), only with consent, never written to disk.

JPEG uses FFmpeg's mjpeg encoder through PyAV (no extra image library); quality 1..100 is mapped
onto mjpeg's qscale (2 = best .. 31): 75 -> 5, 85 -> 3.
"""
from __future__ import annotations

import fractions
from dataclasses import dataclass

import av
from prometheus_client import Counter

from interview.v1 import common_pb2

FRAMES = Counter("interviewer_media_video_frames", "received video frames by source and outcome: sent (encoded and "
                 "queued up), no_consent, over_rate (dropped before any scaling or encoding)", ["source", "outcome"])
_SOURCE = {common_pb2.VIDEO_SOURCE_CAMERA: "camera", common_pb2.VIDEO_SOURCE_SCREEN: "screen"}


@dataclass(frozen=True)
class FrameSpec:
    source: common_pb2.VideoSource.ValueType
    max_px: int
    quality: int


def qscale(quality: int) -> int:
    return max(2, min(31, round((100 - quality) / 5)))


def scaled_size(width: int, height: int, max_px: int) -> tuple[int, int]:
    """Fit the long side into max_px, keep the aspect ratio, even dimensions (4:2:0 chroma)."""
    scale = min(1.0, max_px / max(width, height))
    w, h = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
    return w, h


def encode_jpeg(frame: av.VideoFrame, spec: FrameSpec, time_ms: int) -> common_pb2.VideoFrame:
    """Scale + JPEG encode one frame. CPU-bound: call it in an executor."""
    w, h = scaled_size(frame.width, frame.height, spec.max_px)
    small = frame.reformat(width=w, height=h, format="yuvj420p")
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuvj420p"
    ctx.time_base = fractions.Fraction(1, 1000)
    q = qscale(spec.quality)
    ctx.flags |= av.codec.context.Flags.qscale
    ctx.global_quality = q * 118  # FF_QP2LAMBDA
    ctx.options = {"qmin": str(q), "qmax": str(q)}
    jpeg = b"".join(bytes(p) for p in ctx.encode(small) + ctx.encode(None))
    return common_pb2.VideoFrame(jpeg=jpeg, source=spec.source, time_ms=time_ms, width=w, height=h)


class FrameGate:
    """Decides which received frames are sent, before anything is scaled or encoded: consent
    first, then the per-source rate (the orchestrator's FrameRates; 0 = none)."""

    def __init__(self, fps: float, source: int = common_pb2.VIDEO_SOURCE_UNSPECIFIED):
        self.fps = fps
        self._source = _SOURCE.get(source, "other")
        self._next_due = 0.0
        self.skipped = 0

    def set_rate(self, fps: float) -> None:
        if fps != self.fps:
            self.fps = fps
            self._next_due = 0.0  # a new rate starts at the next frame

    def take(self, now: float, allowed: bool) -> bool:
        if not allowed or self.fps <= 0 or now < self._next_due:
            self.skipped += 1
            FRAMES.labels(self._source, "no_consent" if not allowed else "over_rate").inc()
            return False
        self._next_due = now + 1.0 / self.fps
        return True

    def sent(self) -> None:
        FRAMES.labels(self._source, "sent").inc()
