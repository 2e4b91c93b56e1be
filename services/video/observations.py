"""The ONE closed list of observation types, shared by the video service, its guardrail and (later)
the evaluator. Anything a provider produces outside this list is dropped.

Principle: specific, verifiable observations only — what is on a shared screen, typing or
scrolling, observable behaviour stated as such. Never emotions, confidence, honesty, personality,
appearance or demographics (see guardrail.py)."""
from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from interview.v1 import common_pb2

DETAIL_MAX_CHARS = 200


class ObsType(str, enum.Enum):
    CODE = "code_observation"          # code on screen and its structure ("Python code defining two_sum ...")
    SCREEN_CONTENT = "screen_content"  # a terminal, browser, documentation, AI chat, diagram
    SCREEN_ACTIVITY = "screen_activity"  # typing, scrolling, switching windows (what changed, not why)
    CAMERA_STATE = "camera_state"      # camera covered or dark, picture frozen
    BEHAVIOUR = "observed_behaviour"   # observable behaviour stated as such ("eyes moving line by line ..."), never intent

    @classmethod
    def parse(cls, value: str) -> "ObsType | None":
        try:
            return cls(value.strip().lower())
        except ValueError:
            return None


# Which types are worth offering to the interviewer's LLM.
ACTIONABLE = {ObsType.CODE, ObsType.SCREEN_CONTENT, ObsType.CAMERA_STATE}

SOURCES = {"screen": common_pb2.VIDEO_SOURCE_SCREEN, "camera": common_pb2.VIDEO_SOURCE_CAMERA}


@dataclass(frozen=True)
class Candidate:
    """An observation a provider proposes; it leaves the service only through the guardrail."""

    type: str
    detail: str
    confidence: float
    source: int  # common_pb2.VideoSource
    time_ms: int  # capture time of the frame it is about (session timeline)


class Ids:
    """Observation ids unique per stream ("<stream>-<n>") so an evaluation can cite one."""

    def __init__(self, stream_id: str):
        self._prefix = stream_id
        self._n = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._n)}"


def to_proto(c: Candidate, obs_id: str, wall_ms: int) -> common_pb2.Observation:
    ts = Timestamp()
    ts.FromMilliseconds(wall_ms)
    kind = ObsType(c.type)
    return common_pb2.Observation(id=obs_id, type=kind.value, detail=c.detail, confidence=c.confidence,
                                  source=c.source, time=ts, actionable=kind in ACTIONABLE)
