"""The conversation loop's knobs and the AI service stubs it calls (built by service.py from
OrchestratorConfig; tests build their own)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoopSettings:
    stt_provider: str = ""
    tts_provider: str = ""
    pre_roll_ms: int = 500
    finalize_at_pause_ms: int = 150
    barge_in_commit_ms: int = 500
    barge_in_pause_ms: int = 128
    conversational_silence_ms: int = 1200
    coding_silence_ms: int = 3000
    check_in_s: float = 90.0
    lease_ttl_ms: int = 10_000
    history_max_messages: int = 40
    history_max_chars: int = 24_000
    playback_margin_ms: int = 300


@dataclass
class Stubs:
    vad: Any
    stt: Any
    llm: Any
    tts: Any
    video: Any = None  # None: no video service, frames are refused and media is told to send none
