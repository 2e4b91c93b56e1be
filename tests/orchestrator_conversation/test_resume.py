"""Picking an interview up: the history rebuilt from transcript entries within its limits (the
older part summarised, or truncated), and the phase clock from when the phase began."""
from __future__ import annotations

import pytest

from interview.v1 import common_pb2, interviews_pb2, llm_pb2
from services.common.clock import FakeClock
from services.orchestrator.conversation import resume
from services.orchestrator.conversation.history import History
from services.orchestrator.store.store import timestamp

USER, AGENT = common_pb2.ROLE_USER, common_pb2.ROLE_AGENT


def says(*texts: str) -> list[llm_pb2.ChatMessage]:
    return [llm_pb2.ChatMessage(role=AGENT if i % 2 == 0 else USER, text=t) for i, t in enumerate(texts)]


def test_restore_keeps_the_newest_messages_that_fit():
    h = History(max_messages=3, max_chars=1000)
    older = h.restore(says("a", "b", "c", "d", "e"))
    assert [m.text for m in h.messages] == ["c", "d", "e"] and [m.text for m in older] == ["a", "b"]
    h = History(max_messages=10, max_chars=10)
    older = h.restore(says("x" * 6, "y" * 3, "z" * 5, "w" * 4))  # 5 + 4 fit in 10 chars; 3 more do not
    assert [m.text for m in h.messages] == ["z" * 5, "w" * 4] and len(older) == 2 and not h.over_limit()
    h = History(max_messages=10, max_chars=10)
    assert h.restore(says("x" * 50)) == [] and len(h.messages) == 1  # the last message is always kept


@pytest.mark.parametrize("works", [True, False])
async def test_what_does_not_fit_is_summarised_or_truncated(works: bool):
    h = History(max_messages=2, max_chars=1000)
    older = h.restore(says("Tell me about a project.", "A compiler.", "What was hard?", "Parsing."))
    seen: list[list[str]] = []

    async def summarize(messages: list[llm_pb2.ChatMessage], previous: str) -> str:
        seen.append([m.text for m in messages])
        if not works:
            raise RuntimeError("LLM down")
        return "They built a compiler."
    await h.absorb(older, summarize)
    assert seen == [["Tell me about a project.", "A compiler."]]
    assert [m.text for m in h.messages] == ["What was hard?", "Parsing."]
    assert (h.summary, h.compactions, h.truncations) == (("They built a compiler.", 1, 0) if works else ("", 0, 1))


def test_entries_become_history_messages():
    entry = interviews_pb2.TranscriptEntry(role=AGENT, text="Thanks. What was", incomplete=True, phase_id="intro",
                                           mode=common_pb2.MODE_CODING, start_time=timestamp(10.0))
    m = resume.chat_message(entry)
    assert (m.role, m.text, m.interrupted, m.phase_id, m.mode) == (AGENT, "Thanks. What was", True, "intro",
                                                                   common_pb2.MODE_CODING)
    assert m.time.seconds == 10
    entry.end_time.CopyFrom(timestamp(12.0))
    entry.incomplete = False
    assert not resume.chat_message(entry).interrupted and resume.chat_message(entry).time.seconds == 12


def test_the_phase_began_at_its_last_change_or_the_interview_start():
    iv = interviews_pb2.Interview(phase_id="design", started_at=timestamp(1000.0))
    into = lambda phase, t: interviews_pb2.Event(time=timestamp(t), phase_changed=interviews_pb2.PhaseChanged(
        to_phase_id=phase))
    assert resume.phase_started_at(iv, into("design", 1600.0)) == 1600.0
    assert resume.phase_started_at(iv, None) == 1000.0
    assert resume.phase_started_at(iv, into("design", 900.0)) == 1000.0  # set before the first join
    assert resume.phase_started_at(iv, into("intro", 1600.0)) == 1000.0  # not a change into this phase
    assert resume.phase_started_at(interviews_pb2.Interview(phase_id="x"), None) is None


def test_a_wall_time_on_the_monotonic_clock():
    clock = FakeClock(start=50.0, wall_start=2000.0)
    assert resume.monotonic_at(clock, 1880.0) == 50.0 - 120.0
    assert resume.monotonic_at(clock, 2100.0) == 50.0  # another instance's clock ahead: never in the future
