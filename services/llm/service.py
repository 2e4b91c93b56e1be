"""Wiring of the llm service: provider chain from config, servicer, cleanup on shutdown."""
from __future__ import annotations

from interview.v1 import llm_pb2, llm_pb2_grpc
from services.common.clock import Clock, RealClock
from services.common.fallback import ProviderChain
from services.common.server import ServiceRuntime
from services.common.config import ConfigError
from services.llm.config import PROVIDERS, LlmConfig
from services.llm.generation import Defaults, Generation
from services.llm.prompting import PromptSet
from services.llm.providers.base import LlmProvider
from services.llm.servicer import Limits, LlmServicer

SERVICE_NAME = llm_pb2.DESCRIPTOR.services_by_name["Llm"].full_name


def make_generation(cfg: LlmConfig, clock: Clock | None = None) -> Generation:
    """The provider chain of a config (also used in-process by the CLI and the tests)."""
    clock = clock or RealClock()
    problems = cfg.config_problems("LLM")
    if problems:  # a config built by hand, not through config.load
        raise ConfigError(problems)
    prompts = PromptSet(cfg.prompt_version)
    providers: list[tuple[str, LlmProvider]] = [
        (name, PROVIDERS.create(name, cfg.provider, prompts=prompts, clock=clock, timeout_s=cfg.request_timeout_s))
        for name in cfg.chain()]
    chain: ProviderChain[LlmProvider] = ProviderChain(providers, cooldown_s=cfg.breaker_cooldown_s, clock=clock)
    return Generation(chain, Defaults(model=cfg.provider.gemini.model, temperature=cfg.temperature,
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
