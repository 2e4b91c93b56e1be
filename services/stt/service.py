"""Wiring of the stt service: the providers from the registry table (deepgram when
DEEPGRAM_API_KEY is set, then offline), their chain behind circuit breakers, the servicer, and
shutdown in order (streams, then providers)."""
from __future__ import annotations

from interview.v1 import stt_pb2, stt_pb2_grpc
from services.common.clock import Clock
from services.common.fallback import ProviderChain
from services.common.server import ServiceRuntime
from services.stt.config import PROVIDERS, SttConfig
from services.stt.providers.base import SttProvider
from services.stt.servicer import SttServicer


def make_servicer(cfg: SttConfig, clock: Clock | None = None) -> tuple[SttServicer, list[SttProvider]]:
    """The servicer and its providers (the caller warms and closes them); shared by the server,
    the transcribe tool and the tests."""
    providers: list[tuple[str, SttProvider]] = [
        (name, PROVIDERS.create(name, cfg.provider)) for name in PROVIDERS.names
        if not PROVIDERS.unmet(name, cfg.provider, "STT")]
    chain: ProviderChain[SttProvider] = ProviderChain(providers, cooldown_s=cfg.breaker_cooldown_s, clock=clock)
    return SttServicer(cfg, chain, clock), [p for _, p in providers]


async def serve(servicer: SttServicer, providers: list[SttProvider], runtime: ServiceRuntime) -> None:
    """Warm the providers, register the servicer, close everything at shutdown."""
    for provider in providers:
        await provider.warm()
    runtime.add(stt_pb2.DESCRIPTOR.services_by_name["Stt"].full_name,
                stt_pb2_grpc.add_SttServicer_to_server, servicer)

    async def close() -> None:
        await servicer.close()
        for provider in providers:
            await provider.close()

    runtime.on_shutdown(close)


async def build(cfg: SttConfig, runtime: ServiceRuntime) -> None:
    await serve(*make_servicer(cfg), runtime)
