"""Offline provider: pocketsphinx (bundled en-us model) in decoder worker processes.

session.py streams one Recognize stream utterance by utterance; workers.py owns the pool of worker
processes (worker.py) that run decoder.py, one per core, since pocketsphinx holds the GIL.
"""
from __future__ import annotations

import os

from interview.v1 import common_pb2, stt_pb2
from services.stt.config import OfflineSettings
from services.stt.providers.base import Emit, SttProvider
from services.stt.providers.offline.decoder import model_language
from services.stt.providers.offline.session import OfflineSession
from services.stt.providers.offline.workers import DecoderPool


class OfflineProvider(SttProvider):
    name = "offline"

    def __init__(self, settings: OfflineSettings | None = None):
        self.settings = settings or OfflineSettings()
        self.pool = DecoderPool(self.settings.max_decoders, self.settings.workers or os.cpu_count() or 1)
        self.model_language = model_language()  # the installed model's language: the bundled one is en-US
        self.languages = (self.model_language,) if self.model_language else ()

    def capabilities(self) -> common_pb2.ProviderCapabilities:
        caps = super().capabilities()
        caps.available = bool(self.model_language)
        return caps

    def session(self, rate: int, emit: Emit, config: stt_pb2.SttConfig) -> OfflineSession:
        # Interims always on, even when the caller wants none: a FINALIZE answered by deadline
        # carries the latest one.
        return OfflineSession(self.pool, rate, emit, True, self.settings.interim_ms)

    async def warm(self) -> None:
        await self.pool.warm(self.settings.warm_decoders)

    async def close(self) -> None:
        await self.pool.close()
