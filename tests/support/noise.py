"""Degraded copies of real recordings, for tests that need a badly heard utterance."""
from __future__ import annotations

import numpy as np


def with_noise(samples: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    """`samples` (int16) plus white noise at `snr_db` below the clip's mean power (seeded: the
    same clip every run)."""
    x = samples.astype(np.float64)
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(np.mean(x ** 2) / 10 ** (snr_db / 10)), len(x))
    return np.clip(x + noise, -32768, 32767).astype(np.int16)
