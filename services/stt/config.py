"""Configuration of the stt service (env vars prefixed STT_; `python -m services.stt env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings


@dataclass(frozen=True)
class SttConfig:
    server: ServerSettings
