"""Playback state machine (unit level: the frames aiortc would pull, no network)."""
from __future__ import annotations

import numpy as np
import pytest

from interview.v1 import common_pb2, session_pb2
from services.media.playback import FRAME, OUT_RATE, Playback


def chunk(gen: str, n: int, rate: int = 24000, last: bool = False, value: int = 1000) -> session_pb2.AgentAudio:
    pcm = np.full(n, value, np.int16).tobytes()
    return session_pb2.AgentAudio(generation_id=gen, sample_rate_hz=rate, last=last,
                                  chunk=common_pb2.AudioChunk(pcm=pcm))


def ctl(action: int, gen: str = "") -> session_pb2.PlaybackControl:
    return session_pb2.PlaybackControl(action=action, generation_id=gen)


def make() -> tuple[Playback, list[session_pb2.PlaybackMark]]:
    marks: list[session_pb2.PlaybackMark] = []
    return Playback(60, marks.append), marks


def test_any_rate_becomes_48k_and_finished_mark_counts_at_the_generation_rate() -> None:
    pb, marks = make()
    pb.add(chunk("g", 12000, rate=24000, last=True))  # 0.5 s
    played = sum(int(np.count_nonzero(pb.next_frame())) for _ in range(40))
    assert abs(played - OUT_RATE // 2) < 200
    final = [m for m in marks if m.finished]
    assert len(final) == 1 and abs(final[0].samples_played - 12000) < 50


def test_pause_holds_resume_continues_clear_drops_now_and_later() -> None:
    pb, marks = make()
    pb.add(chunk("g", 24000))
    assert pb.next_frame().any()
    pb.control(ctl(session_pb2.PLAYBACK_PAUSE, "g"))
    assert not pb.next_frame().any() and pb.queued_seconds > 0.9  # queue kept
    assert marks and not marks[-1].finished
    pb.control(ctl(session_pb2.PLAYBACK_RESUME, "g"))
    assert pb.next_frame().any()
    pb.control(ctl(session_pb2.PLAYBACK_CLEAR, "g"))
    assert pb.queued_seconds == 0 and not pb.next_frame().any()
    pb.add(chunk("g", 24000))  # late chunk of the cleared generation
    assert pb.queued_seconds == 0 and pb.discarded_chunks == 1
    pb.add(chunk("h", 2400))  # the next generation plays
    assert pb.next_frame().any()


def test_clear_before_any_audio_still_discards_late_chunks() -> None:
    pb, _ = make()
    pb.control(ctl(session_pb2.PLAYBACK_CLEAR, "early"))
    pb.add(chunk("early", 2400))
    assert pb.queued_seconds == 0


def test_buffer_is_bounded() -> None:
    marks: list[session_pb2.PlaybackMark] = []
    pb = Playback(1.0, marks.append)
    for _ in range(5):
        pb.add(chunk("g", 12000))
    assert pb.queued_seconds <= 1.0 and pb.dropped_chunks == 3


def test_bad_chunks_raise_value_error() -> None:
    pb, _ = make()
    bad = chunk("g", 10)
    bad.chunk.pcm = b"\x00\x01\x02"
    with pytest.raises(ValueError):
        pb.add(bad)
    with pytest.raises(ValueError):
        pb.add(chunk("h", 10, rate=1000))
    assert len(pb.next_frame()) == FRAME


def test_agent_captions_follow_what_plays_and_end_final_on_clear() -> None:
    captions: list[tuple[str, str, bool]] = []
    pb = Playback(60, lambda _m: None, on_caption=lambda g, t, f: captions.append((g, t, f)))
    for text in ("Hello there.", "Tell me about yourself."):
        pb.add(session_pb2.AgentAudio(generation_id="g", sample_rate_hz=24000, text=text,
                                      chunk=common_pb2.AudioChunk(pcm=np.full(12000, 900, np.int16).tobytes())))
        pb.add(chunk("g", 12000))  # the rest of the piece: no text
    assert captions == []  # queued is not heard
    pb.next_frame()
    assert captions == [("g", "Hello there.", False)]
    for _ in range(48):  # 0.98 s of the first piece's 1 s (0.5 + 0.5 s)
        pb.next_frame()
    assert len(captions) == 1
    pb.next_frame(), pb.next_frame()  # the second piece starts (~1 ms early: the resampler's delay)
    assert captions[-1] == ("g", "Hello there. Tell me about yourself.", False)
    pb.control(ctl(session_pb2.PLAYBACK_CLEAR, "g"))
    assert captions[-1] == ("g", "Hello there. Tell me about yourself.", True) and len(captions) == 3


def test_no_live_captions_for_a_generation_the_orchestrator_captioned() -> None:
    captions: list[tuple[str, str, bool]] = []
    pb = Playback(60, lambda _m: None, on_caption=lambda g, t, f: captions.append((g, t, f)))
    pb.final_caption("g")
    pb.add(session_pb2.AgentAudio(generation_id="g", sample_rate_hz=24000, text="Hi.", last=True,
                                  chunk=common_pb2.AudioChunk(pcm=np.full(2400, 900, np.int16).tobytes())))
    while pb.next_frame().any():
        pass
    pb.clear("g")
    assert captions == []
