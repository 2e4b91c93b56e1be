"""`python -m services.vad segments FILE.wav`: speech segments of a recording as JSON.

Uses the service's own Detector and Silero model (unbatched: one stream), so what it prints is what
a Detect stream with the same params reports.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np

from services.common.audio import read_wav, resample
from services.vad.detector import Detector, Event, Params, ParamsError, segments
from services.vad.model import WINDOWS, SileroModel, StreamState

HYSTERESIS = 0.15  # Silero's rule: deactivation = activation - 0.15 unless given


def detect(samples: np.ndarray, rate: int, params: Params, model: SileroModel | None = None) -> Iterator[Event]:
    """Events for a whole int16 signal at 8 or 16 kHz (a trailing partial window is ignored)."""
    model = model or SileroModel()
    state, detector, size = StreamState(rate), Detector(rate, params), WINDOWS[rate][0]
    for start in range(0, len(samples) - size + 1, size):
        yield from detector.process(start, start + size, model.step(state, samples[start:start + size]))
    yield from detector.finish()


def configure(p: argparse.ArgumentParser) -> None:
    d = Params()
    p.add_argument("file", help="a PCM16 WAV file (other rates are resampled to 16 kHz; stereo is averaged)")
    p.add_argument("--threshold", type=float, default=d.activation_threshold, help="activation threshold")
    p.add_argument("--deactivation", type=float, default=None,
                   help=f"deactivation threshold (default: threshold - {HYSTERESIS})")
    p.add_argument("--min-speech-ms", type=int, default=d.min_speech_ms)
    p.add_argument("--min-silence-ms", type=int, default=d.min_silence_ms)
    p.add_argument("--speech-pad-ms", type=int, default=d.speech_pad_ms)


def run(args: argparse.Namespace) -> int:
    deactivation = args.deactivation if args.deactivation is not None else max(0.0, round(args.threshold - HYSTERESIS, 4))
    try:
        params = Params().updated(activation_threshold=args.threshold, deactivation_threshold=deactivation,
                                  min_speech_ms=args.min_speech_ms, min_silence_ms=args.min_silence_ms,
                                  speech_pad_ms=args.speech_pad_ms)
        samples, rate = read_wav(args.file)
    except (ParamsError, ValueError, OSError, EOFError) as exc:
        print(f"vad segments: {exc}", file=sys.stderr)
        return 2
    if rate not in WINDOWS:
        samples, rate = resample(samples, rate, 16000), 16000
    found = [{"start": round(a / rate, 3), "end": round(b / rate, 3)} for a, b in segments(detect(samples, rate, params))]
    print(json.dumps({"file": args.file, "sample_rate_hz": rate, "params": asdict(params), "segments": found}))
    return 0
