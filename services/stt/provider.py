"""What a recognition provider session looks like to a stream, and the events it reports.

A session is one stream's connection to one provider. Audio goes in tagged with caller offsets;
results come out with caller offsets already mapped (see segments.py), through `emit`.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, Union

import grpc


@dataclass
class WordResult:
    text: str
    start: int  # caller offsets (samples)
    end: int
    confidence: float = 0.0


@dataclass
class ProviderResult:
    text: str
    is_final: bool
    start: int
    end: int
    confidence: float = 0.0
    from_finalize: bool = False
    words: list[WordResult] = field(default_factory=list)


@dataclass
class ProviderNotice:
    """Reconnecting / reconnected (ProviderEvent kinds), for the stream to pass on."""
    kind: int
    reason: str = ""


@dataclass
class ProviderFailure:
    """The session gave up for good; `code` is the status the stream ends with if nothing can take over."""
    code: grpc.StatusCode
    reason: str


@dataclass
class Audio:
    offset: int
    pcm: bytes  # s16le at the stream's rate


@dataclass
class FinalizeMark:
    pass


LogItem = Union[Audio, FinalizeMark]
ProviderEventT = Union[ProviderResult, ProviderNotice, ProviderFailure]
Emit = Callable[[ProviderEventT], Awaitable[None]]


class Session(Protocol):
    name: str

    async def start(self) -> None: ...
    async def send_audio(self, audio: Audio) -> None: ...
    async def finalize(self) -> None: ...
    async def close(self) -> None: ...
    def unfinished(self) -> list[LogItem]:
        """Audio and finalize requests not yet covered by a final result: what another provider must redo."""
        ...
