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
        self._due: dict[int, tuple[float, int]] = {}  # source -> (next frame due, last kept capture time)

    def set_mode(self, mode: int) -> None:
        if mode and mode != self.mode:
            self.mode = mode
            self._due.clear()  # a faster mode takes the next frame at once

    def admit(self, source: int, time_ms: int) -> bool:
        r = rate(self.mode, source)
        if r <= 0:
            return False
        interval = 1000.0 / r
        due = self._due.get(source)
        if due is not None and due[1] <= time_ms < due[0] - _EARLY * interval:
            return False
        # Stay on the schedule (early admissions do not raise the average rate); start a new one
        # after a gap or when the capture clock went backwards.
        on_schedule = due is not None and due[1] <= time_ms < due[0] + interval / 2
        self._due[source] = ((due[0] if on_schedule and due else time_ms) + interval, time_ms)
        return True

    def forget(self, source: int) -> None:
        self._due.pop(source, None)
