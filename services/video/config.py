"""Configuration of the video service (env vars prefixed VIDEO_; `python -m services.video env` lists them)."""
from __future__ import annotations

from dataclasses import dataclass

from services.common.server import ServerSettings


@dataclass(frozen=True)
class VideoConfig:
    server: ServerSettings
