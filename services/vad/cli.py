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
from typing import TYPE_CHECKING

import numpy as np

from services.common.audio import read_wav, resample
from services.vad.detector import Detector, Event, Params, ParamsError, segments
from services.vad.model import WINDOWS, SileroModel, StreamState

if TYPE_CHECKING:
    from services.vad.turn_model import SmartTurnModel

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


# --- `turns FILE.wav`: a turn score at every pause ----------------------------------------------

def turn_pauses(samples: np.ndarray, rate: int, params: Params, model: SileroModel | None = None,
                turn_model: SmartTurnModel | None = None) -> list[dict[str, float | bool]]:
    """One record per pause of at least `params.turn_pause_ms` inside speech, scored by the same
    Detector, TurnTracker and model call as a Detect stream with turn scoring on (unbatched).

    The end of the file counts as silence: it is padded with `turn_pause_ms` (plus a window) of
    zeros, so a recording that ends right after its last word still gets that pause scored.
    `pause_ms` is the whole pause (until speech resumes or the padded file ends)."""
    from services.vad.turn_model import SmartTurnModel
    from services.vad.turns import TurnTracker, score_jobs

    model, turn_model = model or SileroModel(), turn_model or SmartTurnModel()
    params = params.updated(turn_scoring=True)
    size = WINDOWS[rate][0]
    samples = np.concatenate([samples, np.zeros(params.turn_pause_ms * rate // 1000 + size, dtype=np.int16)])
    state, detector, tracker = StreamState(rate), Detector(rate, params), TurnTracker(rate)
    found: list[dict[str, float | bool]] = []
    open_pause: dict[str, float | bool] | None = None
    last_end = 0
    for start in range(0, len(samples) - size + 1, size):
        window, end = samples[start:start + size], start + size
        probability = model.step(state, window)
        detector.process(start, end, probability)
        tracker.push(window, start)
        job = tracker.observe(start, end, probability, detector.speaking, params)
        if open_pause is not None and probability >= params.activation_threshold:
            open_pause["pause_ms"] = round((start / rate - float(open_pause["at_s"])) * 1000)
            open_pause = None
        if job is not None:
            [p] = score_jobs(turn_model, [job])
            open_pause = {"at_s": round(job.pause_start / rate, 3), "pause_ms": 0, "probability": round(p, 4),
                          "end_of_turn": p >= params.turn_threshold}
            found.append(open_pause)
        last_end = end
    if open_pause is not None:
        open_pause["pause_ms"] = round((last_end / rate - float(open_pause["at_s"])) * 1000)
    return found


def configure_turns(p: argparse.ArgumentParser) -> None:
    d = Params()
    p.add_argument("file", help="a PCM16 WAV file (16 or 8 kHz as the service takes; other rates are resampled "
                                "to 16 kHz; stereo is averaged)")
    p.add_argument("--pause-ms", type=int, default=d.turn_pause_ms, help="the short pause that triggers a score")
    p.add_argument("--threshold", type=float, default=d.turn_threshold,
                   help="turn probability at or above which end_of_turn is true")


def run_turns(args: argparse.Namespace) -> int:
    from services.vad.turn_model import TurnModelMissing

    try:
        params = Params().updated(turn_pause_ms=args.pause_ms, turn_threshold=args.threshold)
        samples, rate = read_wav(args.file)
        if len(samples) == 0:
            raise ValueError(f"{args.file}: no audio samples")
        if rate not in WINDOWS:
            samples, rate = resample(samples, rate, 16000), 16000
        found = turn_pauses(samples, rate, params)
    except (ParamsError, ValueError, OSError, EOFError, TurnModelMissing) as exc:
        # wave.Error is an Exception subclass without a better base: name it too
        print(f"vad turns: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - e.g. wave.Error on a non-WAV file
        if type(exc).__module__ != "wave":
            raise
        print(f"vad turns: {args.file}: not a PCM WAV file ({exc})", file=sys.stderr)
        return 2
    for record in found:
        print(json.dumps(record))
    return 0
