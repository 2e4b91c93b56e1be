"""Tts.Synthesize: validate the config, then stream through a Synthesis."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import grpc

from interview.v1 import common_pb2, tts_pb2, tts_pb2_grpc
from services.common import languages, logs
from services.common.errors import InvalidArgument, ServiceError
from services.common.fallback import ProviderChain
from services.tts.config import PROVIDERS, SUPPORTED_RATES
from services.tts.providers.base import TtsProvider as Provider, Utterance
from services.tts.providers.offline import OfflineProvider
from services.tts.synthesis import Limits, Synthesis

log = logging.getLogger("tts.servicer")
SPEED_RANGE = (0.6, 1.5)


class TtsServicer(tts_pb2_grpc.TtsServicer):
    def __init__(self, chain: ProviderChain[Provider], offline: OfflineProvider, limits: Limits,
                 default_rate: int = 24000):
        self.chain = chain
        self.offline = offline
        self.limits = limits
        self.default_rate = default_rate

    def check(self, cfg: tts_pb2.TtsConfig) -> tuple[Utterance, str | None]:
        """A validated Utterance and the provider to start from, or InvalidArgument."""
        names = self.chain.names
        if cfg.provider and cfg.provider not in PROVIDERS.names:
            raise InvalidArgument(f"unknown provider {cfg.provider!r}: use '' (the server's chain), "
                                  f"{' or '.join(repr(n) for n in PROVIDERS.names)}", field="config.provider")
        if cfg.provider and cfg.provider not in names:
            raise InvalidArgument(f"provider {cfg.provider!r} is not configured on this server "
                                  f"(available: {', '.join(names)}); use '' for the server's chain", field="config.provider")
        rate = cfg.sample_rate_hz or self.default_rate
        if rate not in SUPPORTED_RATES:
            raise InvalidArgument(f"unsupported sample_rate_hz {cfg.sample_rate_hz}: use one of "
                                  f"{', '.join(map(str, SUPPORTED_RATES))} (0 = {self.default_rate})",
                                  field="config.sample_rate_hz")
        speed = cfg.speed or 1.0
        if not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
            raise InvalidArgument(f"speed {cfg.speed} is out of range: use {SPEED_RANGE[0]}..{SPEED_RANGE[1]} (0 = normal)",
                                  field="config.speed")
        voice, language = cfg.voice, cfg.language or "en"
        candidates = [cfg.provider] if cfg.provider else names
        fit = [n for n in candidates if self.chain.get(n).supports(voice, language)]
        if voice:  # a provider that lists the voice by name before one that takes any id
            fit = [n for n in fit if voice in self.chain.get(n).capabilities().voices] or fit
        if not fit:
            raise self._unsupported(candidates, voice, language)
        start = cfg.provider or (fit[0] if fit[0] != names[0] else None)
        return Utterance(rate=rate, voice=cfg.voice, language=language, speed=speed,
                         generation_id=cfg.generation_id), start

    def _unsupported(self, candidates: list[str], voice: str, language: str) -> InvalidArgument:
        """Which field no candidate provider can serve, and what each one offers."""
        caps = [self.chain.get(n).capabilities() for n in candidates]
        voices = "; ".join(f"the {c.provider} voices are {languages.listing(c.voices)}" if c.voices
                           else f"{c.provider} takes any voice id" for c in caps)
        langs = "; ".join(f"{c.provider}: {languages.listing(c.languages)}" if c.languages
                          else f"{c.provider}: any" for c in caps)
        if voice and not any(not c.voices or voice in c.voices for c in caps):
            return InvalidArgument(f"unknown voice {voice!r}: {voices}", field="config.voice")
        if not any(c.available and languages.supported(c.languages, language) for c in caps):
            return InvalidArgument(f"language {language!r} is not available ({langs})", field="config.language")
        return InvalidArgument(f"voice {voice!r} does not speak {language!r} ({langs})", field="config.voice")

    async def Capabilities(self, request: common_pb2.CapabilitiesRequest,
                           context: grpc.aio.ServicerContext) -> common_pb2.CapabilitiesResponse:
        """The chain in failover order with what each provider declares, then providers this server
        does not run (no API key, or left out of TTS_PROVIDERS) as unavailable."""
        out = common_pb2.CapabilitiesResponse(providers=[self.chain.get(n).capabilities() for n in self.chain.names])
        out.providers.extend(common_pb2.ProviderCapabilities(provider=n, available=False)
                             for n in PROVIDERS.names if n not in self.chain.names)
        return out

    async def Synthesize(self, request_iterator: AsyncIterator[tts_pb2.SynthesizeRequest],
                         context: grpc.aio.ServicerContext) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "empty stream: send a config first, then text, then end")
        if first.WhichOneof("msg") != "config":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "the first message must be a config (provider, voice, sample rate)")
        try:
            utterance, start = self.check(first.config)
        except ServiceError as exc:
            await exc.abort(context)
        with logs.bind(generation_id=utterance.generation_id):
            try:
                async for response in Synthesis(self.chain, utterance, self.limits, start).run(requests):
                    yield response
            except ServiceError as exc:
                log.info("stream rejected", extra={"code": exc.code.name, "reason": exc.message})
                await exc.abort(context)
