"""Maps a provider's timeline back onto the caller's.

A provider sees one continuous signal (the audio we sent it since its connection or utterance
began), but the caller's audio has gaps (VAD gating) and may be resampled. Each chunk we send is
recorded as a segment; provider seconds are mapped through them to caller sample offsets.
"""
from __future__ import annotations

import bisect


class SegmentMap:
    def __init__(self, caller_rate: int):
        self.caller_rate = caller_rate
        self._starts: list[float] = []   # provider seconds at which each segment starts
        self._offsets: list[int] = []    # caller offset of each segment's first sample
        self._lengths: list[int] = []    # caller samples in each segment
        self.provider_s = 0.0            # provider seconds sent so far

    def __len__(self) -> int:
        return len(self._starts)

    def append(self, caller_offset: int, samples: int) -> None:
        if self._starts and self._offsets[-1] + self._lengths[-1] == caller_offset:
            self._lengths[-1] += samples  # contiguous: extend, keeps the map small
        else:
            self._starts.append(self.provider_s)
            self._offsets.append(caller_offset)
            self._lengths.append(samples)
        self.provider_s += samples / self.caller_rate

    def to_caller(self, provider_s: float) -> int:
        """Caller offset of a provider time (clamped into the segment it falls in)."""
        if not self._starts:
            return 0
        i = max(0, bisect.bisect_right(self._starts, provider_s) - 1)
        within = int(round((provider_s - self._starts[i]) * self.caller_rate))
        return self._offsets[i] + min(max(0, within), self._lengths[i])
