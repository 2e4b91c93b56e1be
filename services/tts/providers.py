"""What the synthesis pipeline needs from a TTS provider, and what a provider failure is."""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Utterance:
    """One Synthesize stream's settings, validated."""

    rate: int
    voice: str = ""      # provider voice id; "" = the provider's default
    language: str = "en"
    speed: float = 1.0   # 0.6 .. 1.5
    generation_id: str = ""


class ProviderError(Exception):
    """The provider failed (connection, error message, timeout): the chain may fall back."""


class ProviderStream(Protocol):
    """One utterance on one provider. Pieces are spoken in order; continuations share prosody
    where the provider supports it."""

    def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        """int16 mono samples at the utterance's rate, as soon as the provider has them."""
        ...

    async def finish(self) -> None:
        """No more pieces: let the provider close the utterance cleanly."""
        ...

    async def aclose(self) -> None:
        """Stop at once (cancel, failure): nothing more is generated for this utterance."""
        ...


class Provider(Protocol):
    name: str

    def has_voice(self, voice: str) -> bool: ...

    def open(self, utterance: Utterance) -> ProviderStream: ...

    async def aclose(self) -> None: ...
