"""Configuration of the llm service (env vars prefixed LLM_; `python -m services.llm env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings


@dataclass(frozen=True)
class LlmConfig:
    server: ServerSettings
