"""Configuration of the vad service (env vars prefixed VAD_; `python -m services.vad env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings


@dataclass(frozen=True)
class VadConfig:
    server: ServerSettings
