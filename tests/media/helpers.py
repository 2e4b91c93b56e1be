"""Shared by media tests: fixture speech, transcription with the offline STT, timing helpers."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np

from services.common.audio import read_wav, resample, window_dbfs
from services.stt.providers.offline.decoder import decode_whole

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
CANDIDATE_WAV = SPEECH / "librivox" / "sense_and_sensibility_01_austen_64kb-0920.wav"


def candidate_text(wav: Path = CANDIDATE_WAV) -> str:
    """What is said in a librivox fixture clip (its line in librivox/transcription)."""
    lines = (SPEECH / "librivox" / "transcription").read_text().splitlines()
    line = next(l for l in lines if wav.stem in l)
    return line.rsplit("(", 1)[0].replace("<s>", "").replace("</s>", "").strip()


def transcribe(samples: np.ndarray, rate: int) -> str:
    return decode_whole(resample(samples, rate, 16000))


def speech_span(samples: np.ndarray, rate: int, dbfs: float = -40.0, win_ms: int = 20) -> tuple[int, int]:
    """(first, last) sample index of windows louder than `dbfs`; (0, 0) when all is quiet."""
    win = rate * win_ms // 1000
    n = len(samples) // win
    if not n:
        return 0, 0
    loud = np.nonzero(window_dbfs(samples[:n * win], rate, win_ms) > dbfs)[0]
    if not len(loud):
        return 0, 0
    return int(loud[0] * win), int((loud[-1] + 1) * win)


async def until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


def load_candidate() -> tuple[np.ndarray, int]:
    return read_wav(CANDIDATE_WAV)


def first_utterance(samples: np.ndarray, rate: int, gap_s: float = 0.4, dbfs: float = -40.0) -> np.ndarray:
    """From the first loud 20 ms window to the first silence of `gap_s` after it."""
    win = rate // 50
    n = len(samples) // win
    loud = window_dbfs(samples[:n * win], rate, 20) > dbfs
    first = int(np.argmax(loud))
    quiet, need = 0, int(gap_s * 50)
    for i in range(first, n):
        quiet = 0 if loud[i] else quiet + 1
        if quiet >= need:
            return samples[first * win:(i + 1) * win]
    return samples[first * win:]
