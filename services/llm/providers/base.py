"""The provider base class and what a provider yields, so the failover driver, the servicer and
the CLI handle every provider alike.

A provider is an async generator `generate(request, settings)` of `Delta` and `Act` events,
ending with exactly one `Done`. Raising `ProviderError` before its first event lets the chain
retry or fall back; cancelling the generator must close its upstream request at once. Actions
come from the neutral vocabulary in services/llm/tools.py, which each provider translates.
"""
from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Union

from interview.v1 import llm_pb2
from services.common.errors import ProviderError

__all__ = ["Act", "Delta", "Done", "Event", "LlmProvider", "ProviderError", "Settings"]


@dataclass(frozen=True)
class Delta:
    text: str


@dataclass(frozen=True)
class Act:
    type: int  # llm_pb2.ActionType
    target_phase_id: str = ""
    reason: str = ""


@dataclass(frozen=True)
class Done:
    finish_reason: int = llm_pb2.FINISH_STOP
    input_tokens: int = 0
    output_tokens: int = 0


Event = Union[Delta, Act, Done]


@dataclass(frozen=True)
class Settings:
    """Per-request generation settings after request options were merged with the server's."""

    model: str
    temperature: float
    max_output_tokens: int
    timeout_s: float = 30.0
    extra: dict[str, str] = field(default_factory=dict)


class LlmProvider(abc.ABC):
    """One language model behind the neutral event stream. Built by the registry as
    `Provider(settings, prompts=..., clock=..., timeout_s=...)`."""

    name: str
    model: str = ""  # the model used when a request names none ("" = the service default)

    @abc.abstractmethod
    def generate(self, request: llm_pb2.GenerateRequest, settings: Settings) -> AsyncIterator[Event]:
        """Stream one answer; see the module docstring for the contract."""

    async def close(self) -> None:
        """Release clients and connections at shutdown."""
        return None
