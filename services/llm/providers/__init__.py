"""What a provider yields, so the chain, the servicer and the CLI handle every provider alike.

A provider is an async generator `generate(request, settings)` of `Delta` and `Act` events,
ending with exactly one `Done`. Raising `ProviderError` before its first event lets the chain
fall back; cancelling the generator must close its upstream request at once.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol, Union

from interview.v1 import llm_pb2


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


class ProviderError(Exception):
    """The provider could not answer. `retryable`: a second try may succeed (5xx, a dropped
    connection); not for 4xx such as 429, where retrying at once only adds load."""

    def __init__(self, message: str, *, retryable: bool = True, status: int = 0):
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class Provider(Protocol):
    name: str

    def generate(self, request: llm_pb2.GenerateRequest, settings: Settings) -> AsyncIterator[Event]: ...

    async def close(self) -> None: ...
