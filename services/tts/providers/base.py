"""The base classes a TTS provider implements, and what a provider failure is.

A provider opens one `ProviderStream` per utterance (one Synthesize stream); pieces of text go in,
int16 samples at the utterance's rate come out as soon as the provider has them. Raising
`ProviderError` (services.common.errors) lets the failover driver move the utterance to the next
provider, which speaks the interrupted piece again.
"""
from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from interview.v1 import common_pb2
from services.common import languages as lang
from services.common.errors import ProviderError

__all__ = ["ProviderError", "ProviderStream", "TtsProvider", "Utterance"]


@dataclass(frozen=True)
class Utterance:
    """One Synthesize stream's settings, validated."""

    rate: int
    voice: str = ""      # provider voice id; "" = the provider's default
    language: str = "en"
    speed: float = 1.0   # 0.6 .. 1.5
    generation_id: str = ""


class ProviderStream(abc.ABC):
    """One utterance on one provider. Pieces are spoken in order; continuations share prosody
    where the provider supports it."""

    @abc.abstractmethod
    def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        """int16 mono samples at the utterance's rate, as soon as the provider has them."""

    async def finish(self) -> None:
        """No more pieces: let the provider close the utterance cleanly."""
        return None

    async def aclose(self) -> None:
        """Stop at once (cancel, failure): nothing more is generated for this utterance."""
        return None


class TtsProvider(abc.ABC):
    """A speech synthesiser. Built by the registry as `Provider(settings)`.

    `capabilities` declares its voices and languages (empty = any): Tts.Capabilities reports them,
    so the orchestrator refuses an interview voice or language no provider has, and the servicer
    starts a stream on a provider that has them."""

    name: str

    @abc.abstractmethod
    def capabilities(self) -> common_pb2.ProviderCapabilities:
        """Voices and languages it accepts; `available` = usable now (binary present, key set)."""

    def supports(self, voice: str, language: str) -> bool:
        """Whether a stream with this voice ("" = default) and language can start here."""
        caps = self.capabilities()
        return (caps.available and (not voice or not caps.voices or voice in caps.voices)
                and (not language or lang.supported(caps.languages, language)))

    @abc.abstractmethod
    def has_voice(self, voice: str) -> bool:
        """Whether `voice` is one of this provider's voices (else the stream uses its default voice)."""

    async def warm(self) -> None:
        """Probe what the first streams would otherwise wait for (called at start-up, before serving)."""
        return None

    @abc.abstractmethod
    def open(self, utterance: Utterance) -> ProviderStream:
        """A stream for one utterance (opening connections lazily, at the first piece)."""

    async def aclose(self) -> None:
        """Release connections and processes at shutdown."""
        return None
