"""The CODING check-in timer's rules, in milliseconds of real time with a FakeClock."""
from services.common.clock import FakeClock
from services.orchestrator.conversation.silence_timer import SilenceTimer


def make(clock: FakeClock, timeout: float = 90.0) -> tuple[SilenceTimer, list[float]]:
    fired: list[float] = []
    return SilenceTimer(clock, lambda: fired.append(clock.monotonic()), timeout), fired


async def test_exactly_one_check_in_per_timeout_in_coding(clock):
    timer, fired = make(clock)
    start = clock.monotonic()
    timer.set_mode(coding=True)
    await clock.advance(89.9)
    assert fired == []
    await clock.advance(0.1)
    assert fired == [start + 90]
    await clock.advance(90)  # re-armed with the same timeout
    await clock.advance(45)
    assert fired == [start + 90, start + 180]


async def test_never_runs_in_conversational_and_leaving_coding_cancels(clock):
    timer, fired = make(clock)
    await clock.advance(500)
    assert fired == [] and not timer.armed
    timer.set_mode(coding=True)
    await clock.advance(60)
    timer.set_mode(coding=False)
    await clock.advance(500)
    assert fired == [] and not timer.armed


async def test_counts_from_last_transcribed_utterance_not_from_noise(clock):
    timer, fired = make(clock)
    timer.set_mode(coding=True)
    await clock.advance(60)
    timer.utterance_transcribed()  # the candidate said something: count restarts
    await clock.advance(60)
    assert fired == []
    # VAD noise without a transcript never reaches the timer, so nothing changes.
    await clock.advance(30)
    assert len(fired) == 1


async def test_paused_while_agent_speaks_and_restarted_when_it_stops(clock):
    timer, fired = make(clock, timeout=10)
    timer.set_mode(coding=True)
    await clock.advance(8)
    timer.agent_speaking(True)
    await clock.advance(30)  # a long agent answer: no check-in meanwhile
    assert fired == [] and not timer.armed
    timer.agent_speaking(False)
    await clock.advance(9.9)
    assert fired == []
    await clock.advance(0.1)
    assert len(fired) == 1


async def test_timeout_change_applies_to_the_running_count(clock):
    timer, fired = make(clock, timeout=90)
    timer.set_mode(coding=True)
    await clock.advance(40)
    timer.set_mode(coding=True, timeout_s=30)  # already 40 s of silence: fires at once
    await clock.advance(0)
    assert len(fired) == 1


def test_rejects_non_positive_timeouts():
    import pytest

    clock = FakeClock()
    with pytest.raises(ValueError):
        SilenceTimer(clock, lambda: None, 0)
    with pytest.raises(ValueError):
        SilenceTimer(clock, lambda: None).set_mode(True, -1)
