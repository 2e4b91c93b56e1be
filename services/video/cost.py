"""Cost accounting: frames sent to a cloud model, estimated input tokens and USD per sampling mode.

Prices are from the dated table in docs/video-pricing.md. The Live API bills the tokens in the
session's context on every model turn, not just the new frame: a turn's input = everything still in
the window (bounded by context window compression), which is what `turn()` charges."""
from __future__ import annotations

from dataclasses import dataclass, field

from interview.v1 import video_pb2

PRICE_TABLE_DATE = "2026-12-06"
TOKENS_PER_FRAME = 258         # an image/video frame at default media resolution
TOKENS_PER_FRAME_LOW = 66      # media_resolution LOW
USD_PER_M_INPUT_VIDEO = 3.00   # Live API (gemini-2.5-flash native audio / live), audio+video input
USD_PER_M_INPUT_TEXT = 0.50
USD_PER_M_OUTPUT_TEXT = 2.00


@dataclass
class ModeCost:
    frames: int = 0
    tokens: int = 0
    usd: float = 0.0


@dataclass
class CostMeter:
    """Per stream: tokens are charged when a turn bills the context (frames since the window began)."""

    tokens_per_frame: int = TOKENS_PER_FRAME
    window_tokens: int = 32_000  # context window compression target: the context never bills more
    by_mode: dict[int, ModeCost] = field(default_factory=dict)
    _context_tokens: int = 0

    def frame_sent(self, mode: int) -> None:
        self.by_mode.setdefault(mode, ModeCost()).frames += 1
        self._context_tokens = min(self.window_tokens, self._context_tokens + self.tokens_per_frame)

    def turn(self, mode: int, prompt_tokens: int, output_tokens: int) -> None:
        """One model turn bills the accumulated context plus the prompt, and its output."""
        m = self.by_mode.setdefault(mode, ModeCost())
        tokens = self._context_tokens + prompt_tokens
        m.tokens += tokens
        m.usd += (self._context_tokens * USD_PER_M_INPUT_VIDEO + prompt_tokens * USD_PER_M_INPUT_TEXT
                  + output_tokens * USD_PER_M_OUTPUT_TEXT) / 1e6
        self._context_tokens = min(self.window_tokens, self._context_tokens + prompt_tokens + output_tokens)

    def reset_context(self) -> None:
        """A new session (resumption keeps it; a fresh connect does not)."""
        self._context_tokens = 0

    def fill(self, stats: video_pb2.VideoStats) -> None:
        for mode, m in sorted(self.by_mode.items()):
            stats.by_mode.add(mode=mode, frames_sent_to_model=m.frames, est_input_tokens=m.tokens, est_usd=m.usd)
        stats.frames_sent_to_model = sum(m.frames for m in self.by_mode.values())
        stats.est_input_tokens = sum(m.tokens for m in self.by_mode.values())
        stats.est_usd = sum(m.usd for m in self.by_mode.values())
