"""The base classes a recognition provider implements, and the events its sessions report.

A provider is process-wide (clients, decoder pools); it opens one `Session` per Recognize stream.
A session is that stream's connection to the provider: audio goes in tagged with caller offsets;
results come out with caller offsets already mapped (see segments.py), through `emit`. A session
that gives up for good emits a `ProviderFailure`, and the failover driver moves the stream to the
next provider with the audio the session had not finished (`unfinished`).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
import abc
from dataclasses import dataclass, field
from typing import Union

import grpc

from interview.v1 import common_pb2, stt_pb2
from services.common import languages as lang
from services.common.errors import invalid


@dataclass
class WordResult:
    text: str
    start: int  # caller offsets (samples)
    end: int
    confidence: float = 0.0
    filler: bool = False  # a hesitation ("um", "uh"): turn-taking holds on it (Word.filler)


# Hesitations both providers spell this way (pocketsphinx's dictionary, Deepgram's filler_words);
# the text keeps them (verbatim, for turn-taking and the coach), each word says it is a filler.
FILLER_WORDS = frozenset("um umm uh uhh er erm ah hmm".split())


def is_filler(word: str) -> bool:
    return word.strip(".,!?;:\"'").lower() in FILLER_WORDS


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


class Session(abc.ABC):
    name: str

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def send_audio(self, audio: Audio) -> None: ...

    @abc.abstractmethod
    async def finalize(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    def unfinished(self) -> list[LogItem]:
        """Audio and finalize requests not yet covered by a final result: what another provider must redo."""
        return []


class SttProvider(abc.ABC):
    """A speech recogniser. Built by the registry as `Provider(settings)`.

    `languages` declares what it recognises (BCP-47, matched by services.common.languages; empty =
    any): Stt.Capabilities reports it, so the orchestrator refuses an interview language no
    provider has, and `check` refuses such a stream."""

    name: str
    languages: tuple[str, ...] = ()

    def capabilities(self) -> common_pb2.ProviderCapabilities:
        return common_pb2.ProviderCapabilities(provider=self.name, languages=self.languages, available=True)

    def check(self, config: stt_pb2.SttConfig) -> None:
        """Refuse a stream config this provider cannot serve (raise services.common.errors.InvalidArgument)."""
        if config.language and not lang.supported(self.languages, config.language):
            raise invalid("config.language", f"the {self.name} provider does not recognise {config.language!r}; "
                                             f"it supports {lang.listing(self.languages)}")

    @abc.abstractmethod
    def session(self, rate: int, emit: Emit, config: stt_pb2.SttConfig) -> Session:
        """A session for one stream at `rate` Hz (it connects in `start`)."""

    async def warm(self) -> None:
        """Load what the first streams would otherwise wait for (called at start-up)."""
        return None

    async def close(self) -> None:
        """Release clients and processes at shutdown."""
        return None
