"""Configuration of the tts service (env vars prefixed TTS_; `python -m services.tts env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings


@dataclass(frozen=True)
class TtsConfig:
    server: ServerSettings
