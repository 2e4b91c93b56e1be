"""Exponential backoff shared by every reconnect loop (provider websockets, service streams)."""
from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    factor: float = 2.0
    cap_s: float = 8.0
    attempts: int = 5  # bounded: a dead provider is given up on, and the caller falls back
    jitter: float = 0.1  # +-10 % so many streams do not reconnect in lockstep

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        rng = rng or random.Random()
        delay = self.initial_s
        for _ in range(self.attempts):
            yield min(self.cap_s, delay) * (1 + rng.uniform(-self.jitter, self.jitter))
            delay *= self.factor
