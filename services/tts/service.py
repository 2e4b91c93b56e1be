"""Servicer wiring of the tts service: the provider chain (Cartesia when a key is set, then
offline flite / espeak-ng) behind circuit breakers."""
from __future__ import annotations

import logging

from interview.v1 import tts_pb2, tts_pb2_grpc
from services.common.fallback import ProviderChain
from services.common.server import ServiceRuntime
from services.tts.config import TtsConfig
from services.tts.offline import OfflineProvider
from services.tts.providers import Provider
from services.tts.servicer import TtsServicer
from services.tts.synthesis import Limits

log = logging.getLogger("tts")


def make_servicer(cfg: TtsConfig) -> tuple[TtsServicer, list[Provider]]:
    """The servicer and its providers (the caller closes them); shared by the server and the CLI."""
    offline = OfflineProvider(cfg.offline_voice, cfg.offline_concurrency)
    providers: list[tuple[str, Provider]] = []
    for name in cfg.providers:
        if name == "cartesia":
            if not cfg.cartesia_api_key:
                log.info("cartesia skipped: CARTESIA_API_KEY is not set")
                continue
            from services.tts.cartesia_ws import CartesiaProvider

            providers.append((name, CartesiaProvider(
                cfg.cartesia_api_key, base_url=cfg.cartesia_base_url, ws_url=cfg.cartesia_ws_url,
                model=cfg.cartesia_model, voice=cfg.cartesia_voice, timeout_s=cfg.cartesia_timeout_s,
                idle_connections=cfg.cartesia_idle_connections)))
        elif name == "offline":
            providers.append((name, offline))
        else:
            raise ValueError(f"TTS_PROVIDERS: unknown provider {name!r} (use cartesia, offline)")
    if not providers:
        providers.append(("offline", offline))
    chain: ProviderChain[Provider] = ProviderChain(providers, failure_threshold=cfg.breaker_failures,
                                                   cooldown_s=cfg.breaker_cooldown_s)
    limits = Limits(cfg.chunk_ms, cfg.max_text_chars, cfg.first_piece_words, cfg.max_piece_words)
    return TtsServicer(chain, offline, limits, cfg.default_rate), [p for _, p in providers]


async def build(cfg: TtsConfig, runtime: ServiceRuntime) -> None:
    servicer, providers = make_servicer(cfg)
    runtime.add(tts_pb2.DESCRIPTOR.services_by_name["Tts"].full_name,
                tts_pb2_grpc.add_TtsServicer_to_server, servicer)

    async def close() -> None:
        for provider in providers:
            await provider.aclose()

    runtime.on_shutdown(close)
    log.info("tts ready", extra={"providers": ",".join(servicer.chain.names)})
