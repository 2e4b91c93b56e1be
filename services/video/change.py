"""Change detection for screen frames, before any analysis.

Compares 16x16 blocks of a 640 px wide grayscale image (not one correlation of a thumbnail, which
misses typing). A pixel counts as changed beyond JPEG re-encoding noise; a block counts as changed
when its changed pixels span at least 3 columns and 3 rows, so a blinking text cursor (a 1-2 px
vertical bar) is not a change while a typed character is. A frame is `significant` when many
blocks changed (a scroll, a window switch), which the Gemini provider uses to start a turn."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLOCK = 16
PIXEL_DELTA = 48       # grey levels: JPEG re-encoding noise stays below this at 640 px
MIN_EXTENT = 3         # changed columns and rows a block needs (a cursor bar spans <= 2 columns)
SIGNIFICANT_FRACTION = 0.02


@dataclass(frozen=True)
class Change:
    changed: bool
    blocks: int          # changed blocks
    fraction: float      # of all blocks
    significant: bool


def compare(prev: np.ndarray | None, cur: np.ndarray) -> Change:
    if prev is None or prev.shape != cur.shape:
        return Change(True, -1, 1.0, True)
    h, w = cur.shape
    hb, wb = h // BLOCK, w // BLOCK
    if hb == 0 or wb == 0:
        changed = bool((np.abs(cur.astype(np.int16) - prev) > PIXEL_DELTA).any())
        return Change(changed, int(changed), float(changed), changed)
    mask = np.abs(cur[: hb * BLOCK, : wb * BLOCK].astype(np.int16) - prev[: hb * BLOCK, : wb * BLOCK]) > PIXEL_DELTA
    blocks = mask.reshape(hb, BLOCK, wb, BLOCK)
    cols = blocks.any(axis=1).sum(axis=2)  # (hb, wb): changed columns per block
    rows = blocks.any(axis=3).sum(axis=1)  # changed rows per block
    hit = (cols >= MIN_EXTENT) & (rows >= MIN_EXTENT)
    n = int(hit.sum())
    fraction = n / hit.size
    return Change(n > 0, n, fraction, fraction >= SIGNIFICANT_FRACTION)


class ChangeDetector:
    """Remembers the last frame that counted as changed, so slow drift (a character a frame)
    still adds up to a change."""

    def __init__(self) -> None:
        self._ref: np.ndarray | None = None

    def check(self, gray: np.ndarray) -> Change:
        change = compare(self._ref, gray)
        if change.changed:
            self._ref = gray
        return change

    def reset(self) -> None:
        self._ref = None
