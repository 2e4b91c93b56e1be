"""Two-stage barge-in decisions, with a FakeClock."""
from services.orchestrator.conversation.barge_in import BargeIn, Stage


def make(clock):
    calls: list[tuple[str, str]] = []
    b = BargeIn(clock, pause=lambda g: calls.append(("pause", g)), resume=lambda g: calls.append(("resume", g)),
                commit=lambda g: calls.append(("clear", g)), commit_after_s=0.5)
    return b, calls


async def test_cough_pauses_then_resumes(clock):
    b, calls = make(clock)
    b.turn_started("g1")
    b.speech_started()
    await clock.advance(0.2)
    b.speech_stopped()
    await clock.advance(5)
    assert calls == [("pause", "g1"), ("resume", "g1")] and b.stage is Stage.SPEAKING and b.false_alarms == 1


async def test_first_word_commits_at_once(clock):
    b, calls = make(clock)
    b.turn_started("g1")
    b.speech_started()
    await clock.advance(0.1)
    b.stt_word()
    b.speech_stopped()  # too late to resume
    await clock.advance(5)
    assert calls == [("pause", "g1"), ("clear", "g1")] and b.stage is Stage.IDLE


async def test_half_a_second_of_speech_commits_without_words(clock):
    b, calls = make(clock)
    b.turn_started("g2")
    b.speech_started()
    await clock.advance(0.49)
    assert calls == [("pause", "g2")]
    await clock.advance(0.01)
    assert calls == [("pause", "g2"), ("clear", "g2")] and b.interruptions == 1


async def test_no_agent_turn_means_no_barge_in(clock):
    b, calls = make(clock)
    b.speech_started()
    b.stt_word()
    await clock.advance(1)
    b.turn_started("g3")
    b.turn_finished()
    b.speech_started()
    await clock.advance(1)
    assert calls == []


async def test_turn_ending_while_paused_cancels_the_commit_timer(clock):
    b, calls = make(clock)
    b.turn_started("g4")
    b.speech_started()
    b.turn_finished()
    await clock.advance(1)
    assert calls == [("pause", "g4")] and b.stage is Stage.IDLE


async def test_early_pause_confirmed_by_speech_started_commits_on_the_usual_clock(clock):
    b, calls = make(clock)
    b.turn_started("g5")
    b.early_pause(confirm_within_s=0.5)
    assert calls == [("pause", "g5")]
    await clock.advance(0.3)
    b.speech_started()  # VAD confirms (min speech reached): no second PAUSE
    await clock.advance(0.49)
    assert calls == [("pause", "g5")]
    await clock.advance(0.01)  # commit 500 ms after SPEECH_STARTED, as without the early pause
    assert calls == [("pause", "g5"), ("clear", "g5")]


async def test_early_pause_never_confirmed_resumes(clock):
    b, calls = make(clock)
    b.turn_started("g6")
    b.early_pause(confirm_within_s=0.5)
    await clock.advance(0.5)
    assert calls == [("pause", "g6"), ("resume", "g6")] and b.stage is Stage.SPEAKING
    b.speech_started()  # a later, real start pauses again, normally
    assert calls[-1] == ("pause", "g6")


async def test_a_word_during_an_early_pause_commits_at_once(clock):
    b, calls = make(clock)
    b.turn_started("g7")
    b.early_pause(confirm_within_s=0.5)
    b.stt_word()
    await clock.advance(1)
    assert calls == [("pause", "g7"), ("clear", "g7")]
