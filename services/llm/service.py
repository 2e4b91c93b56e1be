"""Wiring of the llm service: provider chain from config, servicer, cleanup on shutdown."""
from __future__ import annotations

from interview.v1 import llm_pb2, llm_pb2_grpc
from services.common.clock import Clock, RealClock
from services.common.fallback import ProviderChain
from services.common.server import ServiceRuntime
from services.llm.config import LlmConfig
from services.llm.generation import Defaults, Generation
from services.llm.prompting import PromptSet
from services.llm.providers import Provider
from services.llm.providers.scripted import ScriptedProvider
from services.llm.servicer import Limits, LlmServicer

SERVICE_NAME = llm_pb2.DESCRIPTOR.services_by_name["Llm"].full_name


def make_provider(name: str, cfg: LlmConfig, prompts: PromptSet, clock: Clock) -> Provider:
    if name == "scripted":
        return ScriptedProvider(delta_words=cfg.scripted_delta_words,
                                delta_delay_s=cfg.scripted_delta_delay_ms / 1000, clock=clock)
    if name == "gemini":
        from services.llm.providers.gemini import GeminiProvider  # the SDK only where it is used

        return GeminiProvider(cfg.gemini_api_key, prompts, base_url=cfg.gemini_base_url,
                              api_version=cfg.gemini_api_version, timeout_s=cfg.request_timeout_s)
    raise ValueError(f"unknown provider {name!r}")


def make_generation(cfg: LlmConfig, clock: Clock | None = None) -> Generation:
    """The provider chain of a config (also used in-process by the CLI and the tests)."""
    clock = clock or RealClock()
    if "gemini" in cfg.chain() and not cfg.gemini_api_key:
        raise SystemExit("llm: LLM_PROVIDERS includes gemini but GEMINI_API_KEY is not set")
    prompts = PromptSet(cfg.prompt_version)
    providers = [(name, make_provider(name, cfg, prompts, clock)) for name in cfg.chain()]
    chain: ProviderChain[Provider] = ProviderChain(providers, cooldown_s=cfg.breaker_cooldown_s, clock=clock)
    return Generation(chain, Defaults(model=cfg.gemini_model, temperature=cfg.temperature,
                                      max_output_tokens=cfg.max_output_tokens,
                                      first_token_deadline_s=cfg.first_token_deadline_ms / 1000,
                                      request_timeout_s=cfg.request_timeout_s))


async def close_generation(generation: Generation) -> None:
    for name in generation.chain.names:
        await generation.chain.get(name).close()


async def build(cfg: LlmConfig, runtime: ServiceRuntime) -> LlmServicer:
    """Register the servicer (returned, so in-process tests can look at its provider chain)."""
    generation = make_generation(cfg)
    servicer = LlmServicer(generation, Limits(cfg.max_history_messages, cfg.max_history_chars))
    runtime.add(SERVICE_NAME, llm_pb2_grpc.add_LlmServicer_to_server, servicer)
    runtime.on_shutdown(lambda: close_generation(generation))
    return servicer
