"""Rate sampling per source and mode, applied to a frame's header fields only: a frame above the
rate is dropped before anything decodes it."""
from __future__ import annotations

from interview.v1 import common_pb2, video_pb2

CAMERA, SCREEN = common_pb2.VIDEO_SOURCE_CAMERA, common_pb2.VIDEO_SOURCE_SCREEN

# Frames per second analysed, by mode and source (the orchestrator maps phases to modes).
RATES: dict[int, dict[int, float]] = {
    video_pb2.SAMPLING_OFF: {SCREEN: 0.0, CAMERA: 0.0},
    video_pb2.SAMPLING_LOW: {SCREEN: 0.5, CAMERA: 0.5},
    video_pb2.SAMPLING_NORMAL: {SCREEN: 1.0, CAMERA: 1.0},
    video_pb2.SAMPLING_SCREEN_FOCUS: {SCREEN: 2.0, CAMERA: 0.5},
}
DEFAULT_MODE = video_pb2.SAMPLING_NORMAL
# A frame may come this fraction of an interval early and still count (capture jitter): a 15 fps
# source sampled at 2 fps keeps one frame every ~0.47-0.53 s rather than drifting to 0.53-0.6 s.
_EARLY = 0.1


def rate(mode: int, source: int) -> float:
    return RATES.get(mode or DEFAULT_MODE, RATES[DEFAULT_MODE]).get(source, 0.0)


class RateSampler:
    """Keeps at most `rate(mode, source)` frames per second per source, by capture time."""

    def __init__(self, mode: int):
        self.mode = mode or DEFAULT_MODE
        self._last: dict[int, int] = {}

    def set_mode(self, mode: int) -> None:
        if mode and mode != self.mode:
            self.mode = mode
            self._last.clear()  # a faster mode takes the next frame at once

    def admit(self, source: int, time_ms: int) -> bool:
        r = rate(self.mode, source)
        if r <= 0:
            return False
        last = self._last.get(source)
        interval_ms = 1000.0 / r
        if last is not None and last <= time_ms < last + interval_ms * (1 - _EARLY):
            return False
        self._last[source] = time_ms  # also resets when the capture clock went backwards
        return True

    def forget(self, source: int) -> None:
        self._last.pop(source, None)
