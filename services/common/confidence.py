"""Combining speech-recognition confidences across pieces of one utterance.

A confidence here is what SttResult.confidence carries: 0..1, about how many of the result's words
are right (Deepgram's transcript confidence; offline, the mean of pocketsphinx's per-word
posteriors), and 0 means "unknown", never "certainly wrong". So an utterance finalized in pieces
gets the word-weighted mean of its pieces that have a confidence: a two-word "okay so" with a low
score does not drag down the twenty well-heard words after it, and unknown pieces are left out.
"""
from __future__ import annotations

from collections.abc import Iterable


def word_weighted(pieces: Iterable[tuple[float, int]]) -> float:
    """Mean of (confidence, words) pieces weighted by words; 0 (unknown) pieces and empty pieces
    are left out; 0.0 when none is left."""
    known = [(c, n) for c, n in pieces if c > 0 and n > 0]
    words = sum(n for _, n in known)
    return min(1.0, sum(c * n for c, n in known) / words) if words else 0.0
