"""The detector state machine on synthetic probabilities: hysteresis, min speech/silence, padding,
and params changes mid-utterance (the rules in services/vad/detector.py's docstring)."""
from __future__ import annotations

import math

import pytest

from services.vad.detector import Detector, Event, Kind, Params, ParamsError, segments

W = 512  # 32 ms at 16 kHz
MS = 16


def run(det: Detector, probs: list[float], first: int = 0) -> list[Event]:
    out: list[Event] = []
    for i, p in enumerate(probs, start=first):
        out += det.process(i * W, (i + 1) * W, p)
    return out


def test_hysteresis_min_speech_and_padding():
    det = Detector(16000, Params(min_speech_ms=64, min_silence_ms=96, speech_pad_ms=10))
    # 2 windows below activation, speech (0.9, then 0.4 holds: between thresholds), 3 silent windows
    events = run(det, [0.1, 0.4, 0.9, 0.4, 0.9, 0.1, 0.1, 0.1, 0.1])
    assert [(e.kind, e.offset, e.decided_at) for e in events] == [
        (Kind.STARTED, 2 * W - 10 * MS, 4 * W),   # candidate at window 2, confirmed after 64 ms
        (Kind.STOPPED, 5 * W + 10 * MS, 8 * W),   # silence from window 5, 96 ms later
    ]


def test_a_blip_shorter_than_min_speech_is_not_an_utterance():
    det = Detector(16000, Params(min_speech_ms=250))
    assert run(det, [0.9, 0.9, 0.1] * 5 + [0.0] * 5) == []


def test_a_window_between_thresholds_neither_starts_nor_ends_silence():
    det = Detector(16000, Params(min_speech_ms=0, min_silence_ms=96, speech_pad_ms=0))
    events = run(det, [0.9, 0.1, 0.4, 0.9, 0.1, 0.4, 0.4])
    # the pause from window 1 is not reset by 0.4 but is by 0.9; the second pause (window 4) ends it
    assert [(e.kind, e.offset, e.decided_at) for e in events] == [(Kind.STARTED, 0, W), (Kind.STOPPED, 4 * W, 7 * W)]


def test_start_padding_never_reaches_back_into_the_previous_utterance():
    det = Detector(16000, Params(min_speech_ms=0, min_silence_ms=32, speech_pad_ms=200))
    events = run(det, [0.9, 0.1, 0.9])
    assert [e.offset for e in events] == [0, 2 * W, 2 * W]  # stop pad clamped to its decision point
    assert list(segments(events + det.finish())) == [(0, 2 * W), (2 * W, 3 * W)]


def test_finish_closes_an_open_utterance_where_the_audio_or_its_pause_ended():
    det = Detector(16000, Params(min_speech_ms=0, min_silence_ms=1000, speech_pad_ms=0))
    run(det, [0.9, 0.9, 0.1])
    [stop] = det.finish()
    assert (stop.kind, stop.offset, stop.decided_at) == (Kind.STOPPED, 2 * W, 3 * W)
    assert det.finish() == []


def test_lowering_min_silence_during_a_longer_pause_stops_on_the_next_window():
    det = Detector(16000, Params(min_speech_ms=0, min_silence_ms=3000, speech_pad_ms=30))
    run(det, [0.9] * 5 + [0.05] * 30)  # 960 ms of pause so far
    assert det.speaking
    det.set_params(det.params.updated(min_silence_ms=500))
    # even a speech window cannot undo a pause that already happened: it stops the old utterance
    # and (min speech 0) starts a new one
    stop, start = det.process(35 * W, 36 * W, 0.95)
    assert (stop.kind, stop.offset, stop.decided_at) == (Kind.STOPPED, 5 * W + 30 * MS, 36 * W)
    assert (start.kind, start.offset) == (Kind.STARTED, 35 * W - 30 * MS)


def test_raising_min_silence_during_a_pause_keeps_the_utterance_and_counts_the_pause_so_far():
    det = Detector(16000, Params(min_speech_ms=0, min_silence_ms=1200, speech_pad_ms=0))
    run(det, [0.9] * 5 + [0.05] * 30)  # 960 ms of pause
    det.set_params(det.params.updated(min_silence_ms=3000))
    silent = 3000 * MS // W + 1  # windows of pause needed in total
    events = run(det, [0.05] * (silent - 30), first=35)
    assert [(e.kind, e.offset) for e in events] == [(Kind.STOPPED, 5 * W)]
    assert events[0].decided_at - 5 * W >= 3000 * MS


def test_min_speech_only_gates_a_pending_start():
    det = Detector(16000, Params(min_speech_ms=1000, speech_pad_ms=0))
    assert run(det, [0.9] * 10) == []  # 320 ms pending
    det.set_params(det.params.updated(min_speech_ms=200))
    [start] = det.process(10 * W, 11 * W, 0.1)  # due on the next window whatever its probability
    assert (start.kind, start.offset, start.decided_at) == (Kind.STARTED, 0, 11 * W)
    # raising it once the utterance started changes nothing for that utterance
    det.set_params(det.params.updated(min_speech_ms=5000))
    assert run(det, [0.9] * 3, first=11) == [] and det.speaking


def test_thresholds_apply_to_the_next_window():
    det = Detector(16000, Params(min_speech_ms=0))
    assert run(det, [0.6]) != []
    det2 = Detector(16000, Params(min_speech_ms=0))
    det2.set_params(det2.params.updated(activation_threshold=0.7, deactivation_threshold=0.5))
    assert run(det2, [0.6]) == []


@pytest.mark.parametrize("changes, field", [
    ({"activation_threshold": 1.5}, "activation_threshold"),
    ({"activation_threshold": math.nan}, "activation_threshold"),
    ({"deactivation_threshold": -0.1}, "deactivation_threshold"),
    ({"min_speech_ms": -1}, "min_speech_ms"),
    ({"min_silence_ms": 600_000}, "min_silence_ms"),
    ({"speech_pad_ms": 5000}, "speech_pad_ms"),
    ({"activation_threshold": 0.3}, "deactivation_threshold"),  # below the default deactivation 0.35
])
def test_out_of_range_params_are_rejected_with_the_field_and_the_accepted_range(changes, field):
    with pytest.raises(ParamsError) as err:
        Params().updated(**changes)
    assert err.value.field == field
    assert "accepted" in str(err.value) or "must be lower" in str(err.value)


def test_8khz_counts_time_in_8khz_samples():
    det = Detector(8000, Params(min_speech_ms=64, speech_pad_ms=0))
    events: list[Event] = []
    for i in range(3):
        events += det.process(i * 256, (i + 1) * 256, 0.9)
    assert [(e.offset, e.decided_at) for e in events] == [(0, 512)]  # 64 ms = 512 samples at 8 kHz
