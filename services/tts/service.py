"""Servicer wiring of the tts service: the provider chain (Cartesia when a key is set, then
offline flite / espeak-ng) behind circuit breakers."""
from __future__ import annotations

import logging

from interview.v1 import tts_pb2, tts_pb2_grpc
from services.common.fallback import ProviderChain
from services.common.server import ServiceRuntime
from services.tts.config import PROVIDERS, TtsConfig
from services.tts.providers.base import TtsProvider
from services.tts.providers.offline import OfflineProvider
from services.tts.servicer import TtsServicer
from services.tts.synthesis import Limits

log = logging.getLogger("tts")


def make_servicer(cfg: TtsConfig) -> tuple[TtsServicer, list[TtsProvider]]:
    """The servicer and its providers (the caller closes them); shared by the server and the CLI.
    A chain provider without what it needs (an API key) is skipped; offline is always built: it
    checks voices and languages, and answers when nothing else is left."""
    offline: OfflineProvider = PROVIDERS.create("offline", cfg.provider)
    providers: list[tuple[str, TtsProvider]] = []
    for name in cfg.providers:
        if unmet := PROVIDERS.unmet(name, cfg.provider, "TTS"):
            log.info("provider skipped: %s not set", ", ".join(unmet), extra={"provider": name})
            continue
        providers.append((name, offline if name == "offline" else PROVIDERS.create(name, cfg.provider)))
    if not providers:
        providers.append(("offline", offline))
    chain: ProviderChain[TtsProvider] = ProviderChain(providers, failure_threshold=cfg.breaker_failures,
                                                      cooldown_s=cfg.breaker_cooldown_s)
    limits = Limits(cfg.chunk_ms, cfg.max_text_chars, cfg.first_piece_words, cfg.max_piece_words)
    return TtsServicer(chain, offline, limits, cfg.default_rate), [p for _, p in providers]


async def build(cfg: TtsConfig, runtime: ServiceRuntime) -> None:
    servicer, providers = make_servicer(cfg)
    for provider in providers:
        await provider.warm()
    await servicer.offline.warm()  # it answers voice checks even when not in the chain
    runtime.add(tts_pb2.DESCRIPTOR.services_by_name["Tts"].full_name,
                tts_pb2_grpc.add_TtsServicer_to_server, servicer)

    async def close() -> None:
        for provider in providers:
            await provider.aclose()

    runtime.on_shutdown(close)
    log.info("tts ready", extra={"providers": ",".join(servicer.chain.names)})
