"""The voice-to-voice driver's measurement on a capture whose answer is known: real recordings placed
at known times as the page's microphone and as the interviewer's audio (no browser: the browser
run is `python -m tests.load.voice_to_voice`, docs/benchmarks.md)."""
from __future__ import annotations

import numpy as np

from interview.v1 import interviews_pb2
from services.common.audio import read_wav
from tests.load.harness import FIXTURES
from tests.load.voice_to_voice import AGENT_DBFS, MIC_DBFS, RATE, Answer, Layout, budget, librivox, loud, measure
from tests.media.browser import Recording


def capture(answer: np.ndarray, at_s: float, agent: list[tuple[float, np.ndarray]], seconds: float) -> Recording:
    """What the page would record: the answer on the mic at `at_s`, interviewer clips on the playback side."""
    mic, pcm = np.zeros(int(seconds * RATE), np.int16), np.zeros(int(seconds * RATE), np.int16)
    mic[int(at_s * RATE):int(at_s * RATE) + len(answer)] = answer
    for t, clip in agent:
        pcm[int(t * RATE):int(t * RATE) + len(clip)] = clip[:len(pcm) - int(t * RATE)]
    return Recording(pcm, mic, 1000.0 + np.arange(len(pcm)) / RATE, RATE)


def test_end_of_speech_to_reply_and_a_cut_in_at_the_thinking_pause() -> None:
    audio, notes = librivox("0890", {"and": 1.5})
    assert notes == ["1.5 s after 'and'"]
    reply = read_wav(FIXTURES / "goforward_16k.wav", RATE)[0]
    end_s = 2.0 + (np.nonzero(loud(audio, RATE, MIC_DBFS))[0][-1] + 1) / 100  # last loud 10 ms
    pause_start = 2.0 + 2.39  # 'and' ends at 2.39 s (alignment.json)
    speech_in_reply = np.nonzero(loud(reply, RATE, AGENT_DBFS))[0][0] / 100
    rec = capture(audio, 2.0, [(pause_start + 1.0 - speech_in_reply, reply[:int(1.2 * RATE)]),  # cut in mid-pause
                               (end_s + 0.7 - speech_in_reply, reply)], 20.0)
    layout = Layout(path=None, starts=[2.0 + 0.27], ends=[end_s])  # type: ignore[arg-type]
    [m] = measure(rec, layout, [Answer("0890", audio, notes)])
    assert abs(m.end - (1000.0 + end_s)) < 0.015
    assert 680 <= m.v2v_ms <= 720, m.v2v_ms
    [cut] = m.cut_ins
    assert cut["pause_s"] is not None and abs(cut["pause_s"] - 1.5) < 0.15, cut
    assert 950 <= cut["after_pause_start_ms"] <= 1050, cut
    assert not m.overlap and not m.talking_at_end


def test_a_reply_still_playing_when_the_answer_starts_is_an_overlap_not_a_cut_in() -> None:
    audio, _ = librivox("0880", {})
    reply = read_wav(FIXTURES / "forever_16k.wav", RATE)[0]
    rec = capture(audio, 3.0, [(1.0, reply)], 12.0)  # 1.0 + 3.4 s runs past the answer's start
    layout = Layout(path=None, starts=[3.2], ends=[3.0 + len(audio) / RATE])  # type: ignore[arg-type]
    [m] = measure(rec, layout, [Answer("0880", audio, [])])
    assert m.overlap and not m.cut_ins


def test_stage_budget_adds_up_to_the_heard_delay() -> None:
    from tests.load.voice_to_voice import Measured
    m = Measured("a", 0.0, 5.0, v2v_ms=900)
    tm = interviews_pb2.TurnMetrics(stt_final_ms=80, llm_first_token_ms=90, tts_first_audio_ms=250,
                                    first_audio_sent_ms=260, speech_end_to_commit_ms=300,
                                    commit_to_first_audio_ms=160)
    b = budget(m, tm)
    assert b["pause"] == 200 and b["commit_after_pause"] == 100 and b["finalize"] == 80
    assert b["llm_first_token"] == 10 and b["tts_first_audio"] == 160
    assert b["orchestrator_span"] == 460 and b["outside"] == 440


def test_answers_are_found_where_the_microphone_played_them_not_where_the_file_put_them() -> None:
    """On a loaded machine Chromium's fake microphone falls behind its file by seconds."""
    first, _ = librivox("0880", {})
    second, _ = librivox("0930", {})
    reply = read_wav(FIXTURES / "goforward_16k.wav", RATE)[0]
    mic = np.zeros(30 * RATE, np.int16)
    mic[2 * RATE:2 * RATE + len(first)] = first
    late = 2 + 10 + 2.5  # the file puts the second answer 10 s after the first; it plays 2.5 s late
    mic[int(late * RATE):int(late * RATE) + len(second)] = second
    ends = [2 + (np.nonzero(loud(x, RATE, MIC_DBFS))[0][-1] + 1) / 100 for x in (first, second)]
    ends[1] += late - 2
    pcm = np.zeros_like(mic)
    onset = np.nonzero(loud(reply, RATE, AGENT_DBFS))[0][0] / 100
    for end in ends:
        at = int((end + 0.9 - onset) * RATE)
        pcm[at:at + len(reply)] = reply
    rec = Recording(pcm, mic, 1000.0 + np.arange(len(pcm)) / RATE, RATE)
    starts = [2 + np.nonzero(loud(x, RATE, MIC_DBFS))[0][0] / 100 for x in (first, second)]
    layout = Layout(path=None, starts=[starts[0], starts[1] + 10],  # type: ignore[arg-type]
                    ends=[ends[0], ends[1] - 2.5])
    measured = measure(rec, layout, [Answer("0880", first, []), Answer("0930", second, [])])
    assert [m.v2v_ms for m in measured] == [900, 900] and not any(m.suspect or m.cut_ins for m in measured)
