"""Configuration of the orchestrator service (env vars prefixed ORCHESTRATOR_; `python -m services.orchestrator env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings


@dataclass(frozen=True)
class OrchestratorConfig:
    server: ServerSettings
