"""PauseFinalize: the listener's FINALIZE at the pause mirrors the VAD turn tracker's pause start."""
from __future__ import annotations

from unittest import mock

from interview.v1 import common_pb2
from services.orchestrator.conversation.pause_finalize import PauseFinalize

PARAMS = common_pb2.VadParams(activation_threshold=0.5, deactivation_threshold=0.35)
W = 512


def _feed(pf: PauseFinalize, probabilities: list[float], start: int = 0) -> list[int]:
    """Windows from `start`; the window ends at which a FINALIZE was due (and sent)."""
    due = []
    for i, p in enumerate(probabilities):
        s = start + i * W
        if pf.window(s, s + W, p, PARAMS):
            due.append(s + W)
            pf.sent((f"f{len(due)}", common_pb2.TraceContext(), mock.Mock()))
    return due


def test_due_once_per_pause_from_its_first_window_below_the_deactivation_threshold() -> None:
    pf = PauseFinalize(after_samples=1600)  # 100 ms at 16 kHz: 4 windows of 32 ms (the default is 150)
    # speech, 0.4 (between the thresholds: no pause yet), then quiet from window 3
    due = _feed(pf, [0.9, 0.9, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1])
    assert due == [7 * W] and pf.quiet_from == 3 * W
    assert pf.take(3 * W) is not None  # the VAD scored the same pause: its FINALIZE is this one
    assert _feed(pf, [0.1, 0.1], start=10 * W) == []  # not again for the same pause


def test_speech_ends_the_pause_and_a_score_for_another_pause_start_finalizes_anew() -> None:
    pf = PauseFinalize(after_samples=1600)
    _feed(pf, [0.9, 0.1, 0.1, 0.1, 0.1])
    span = pf._sent[2]  # type: ignore[index]
    assert pf.take(9 * W) is None  # the VAD counted another pause start: FINALIZE with the score
    span.end.assert_called_once()
    assert _feed(pf, [0.1, 0.1], start=5 * W) == []  # that pause is FINALIZEd with its score
    assert _feed(pf, [0.9, 0.1, 0.1, 0.1, 0.1], start=7 * W) == [12 * W]  # speech, then a new pause


def test_off_and_reset() -> None:
    assert _feed(PauseFinalize(after_samples=0), [0.9] + [0.1] * 20) == []
    pf = PauseFinalize(after_samples=1600)
    _feed(pf, [0.9, 0.1, 0.1, 0.1, 0.1])
    span = pf._sent[2]  # type: ignore[index]
    pf.reset()  # SPEECH_STARTED / SPEECH_STOPPED: the unused FINALIZE's span is closed
    span.end.assert_called_once()
    assert pf.quiet_from is None
