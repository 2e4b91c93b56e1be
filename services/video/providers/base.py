"""What a video provider is: a factory of per-stream analysers.

A stream analyser receives frames that already passed consent, rate sampling, decoding, scaling
and (for the screen) change detection, and proposes Candidates through `emit`; the stream session
puts every one of them through the guardrail. A provider failure (`ProviderFailed` from `run`)
makes the session fall back to the next provider."""
from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from services.video.change import Change
from services.video.frames import Decoded
from services.video.observations import Candidate

Emit = Callable[[Candidate], None]


class ProviderFailed(Exception):
    """The provider cannot go on for this stream (quota, auth, reconnects exhausted)."""


@dataclass
class Frame:
    source: int
    time_ms: int
    decoded: Decoded
    change: Change | None = None  # screen frames only
    jpeg: bytes = b""  # the frame as received, reused when it needed no scaling (no re-encode)


@dataclass
class StreamContext:
    stream_id: str
    role: str
    mode: int  # video_pb2.SamplingMode
    emit: Emit
    on_model_frame: Callable[[int], None] = lambda mode: None  # a frame went to a cloud model
    on_model_turn: Callable[[int, int, int], None] = lambda mode, prompt, output: None
    raw_output: Callable[[str, int, int], None] = lambda text, source, time_ms: None  # model text to parse
    extra: dict[str, object] = field(default_factory=dict)


class StreamAnalyser(abc.ABC):
    """One stream's analysis. `submit` never blocks: an analyser keeps only what it needs (the
    newest frame), so a slow analysis never builds a backlog."""

    @abc.abstractmethod
    def submit(self, frame: Frame) -> None: ...

    def still(self, frame: Frame) -> None:
        """A screen frame change detection called unchanged (not analysed by default)."""

    def set_mode(self, mode: int) -> None:
        """The sampling mode changed (analysis cadence follows it)."""

    @abc.abstractmethod
    def drop_source(self, source: int) -> None:
        """Consent for `source` was withdrawn: forget its frames at once."""

    @abc.abstractmethod
    async def run(self) -> None:
        """Analyse until cancelled; raise ProviderFailed when this provider cannot go on."""

    async def drain(self) -> None:
        """The client half-closed: finish what is pending (bounded by the caller's timeout)."""


class Provider(abc.ABC):
    name: str

    @abc.abstractmethod
    def open(self, ctx: StreamContext) -> StreamAnalyser: ...

    async def healthy(self) -> bool:
        return True

    async def aclose(self) -> None:
        """Release shared resources (clients, executors)."""
