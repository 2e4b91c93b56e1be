"""Live coaching rules (conversation/coaching.py) on a recorded practice transcript: at most one note
per answer, never the previous answer's metric, at most one heard note a minute, unheard notes
count for neither rule; and no coach outside COACH interviews or in CODING mode."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from interview.v1 import common_pb2, interviews_pb2, llm_pb2
from services.common.clock import FakeClock
from services.orchestrator.conversation.coaching import Coach, CoachRules
from services.orchestrator.conversation.history import History
from services.orchestrator.conversation.interview_view import InterviewView
from services.orchestrator.conversation.transcript import Transcript
from services.orchestrator.conversation.turns import AgentTurn
from services.orchestrator.evaluation import coaching

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts" / "practice_coaching.json"
USER, AGENT = common_pb2.ROLE_USER, common_pb2.ROLE_AGENT

FILLERS_5 = "You said 'um' and similar fillers 5 times in that answer; try a short silent pause instead."
FILLERS_4 = "You said 'um' and similar fillers 4 times in that answer; try a short silent pause instead."
LONG = "That answer ran about 3 minutes; aim for under 2: lead with the point, then offer detail."
CUT_IN = "You started answering before I had finished; let the question finish, then take a second to plan your answer."


def entries() -> list[interviews_pb2.TranscriptEntry]:
    return [json_format.ParseDict(e, interviews_pb2.TranscriptEntry()) for e in json.loads(FIXTURE.read_text())["entries"]]


def replay(rules: CoachRules, heard: bool | dict[int, bool] = True) -> dict[int, tuple[str, str] | None]:
    """Run the rules as the live loop does: after each answer (its last entry's end), the transcript
    so far goes in; the reply is over before the next answer."""
    es = entries()
    out: dict[int, tuple[str, str] | None] = {}
    for i, e in enumerate(es):
        if e.role != USER or (i + 1 < len(es) and es[i + 1].role == USER):
            continue
        now = e.end_time.seconds
        note = rules.choose(es[: i + 1], now)
        out[e.sequence] = (note.metric, note.text) if note else None
        spoken = heard if isinstance(heard, bool) else heard.get(e.sequence, True)
        rules.answered(note, spoken, now + 5)
    return out


def test_the_rules_on_a_recorded_practice_transcript() -> None:
    assert replay(CoachRules(min_gap_s=60)) == {
        2: (coaching.FILLER_RATE, FILLERS_5),    # 5 hesitations in 21 words
        4: None,                                 # hesitations again: not the previous answer's metric twice
        6: (coaching.ANSWER_DURATION, LONG),     # 150 s
        8: None,                                 # it cut the interviewer off, but a note was heard 29 s ago
        10: (coaching.FILLER_RATE, FILLERS_4),   # the answer before got none: fillers may be said again
    }


def test_a_note_the_candidate_did_not_hear_counts_for_neither_rule() -> None:
    notes = replay(CoachRules(min_gap_s=60), heard={6: False})
    assert notes[6] == (coaching.ANSWER_DURATION, LONG)
    assert notes[8] == (coaching.INTERRUPTED_INTERVIEWER, CUT_IN)  # the last heard note was at 36 s


def test_without_the_rate_limit_every_answer_but_a_repeat_gets_one() -> None:
    notes = replay(CoachRules(min_gap_s=0))
    assert [k for k, v in notes.items() if v is None] == [4]
    assert notes[8] == (coaching.INTERRUPTED_INTERVIEWER, CUT_IN)


def entry(role: int, text: str, start: float, end: float) -> interviews_pb2.TranscriptEntry:
    e = interviews_pb2.TranscriptEntry(role=role, text=text)
    e.start_time.FromSeconds(int(start))
    e.end_time.FromSeconds(int(end))
    return e


def test_talk_ratio_only_after_a_few_answers_and_like_is_not_a_hesitation() -> None:
    es = []
    for k in range(3):
        es += [entry(AGENT, "A long question " * 20, k * 100, k * 100 + 60),
               entry(USER, "I like it, like, I would like that", k * 100 + 61, k * 100 + 71)]
        notes = coaching.live_notes(es)
        assert notes == ([] if k < 2 else [coaching.Note(coaching.TALK_RATIO, (
            "So far you have spoken about 14 percent of the time; the candidate usually talks most, so give "
            "fuller answers with an example."))])
    assert coaching.live_notes(es[:-1]) == []  # the interviewer spoke last: no answer to coach


def coach(persona: int, mode: int = common_pb2.MODE_CONVERSATIONAL, publish: Any = None) -> tuple[Coach, Transcript]:
    clock = FakeClock()
    iv = interviews_pb2.Interview(id="iv_x", persona=persona, mode=mode)
    view = InterviewView(iv, clock, conversational_silence_ms=1200, coding_silence_ms=3000, check_in_s=90)
    transcript = Transcript(view=view, session_id="s", clock=clock, history=History(40, 24_000), outbox=None,  # type: ignore[arg-type]
                            spawn=None, changed=lambda: None)  # type: ignore[arg-type]
    c = Coach(view=view, transcript=transcript, clock=clock, spawn=lambda coro, name: asyncio.create_task(coro),
              publish=publish)
    transcript.add_pending("um so um I uh think um", clock.time() - 10)
    return c, transcript


def reply(task: int = llm_pb2.TASK_REPLY) -> AgentTurn:
    return AgentTurn("g1", task, llm_pb2.GenerateRequest(), 16000, FakeClock(), None)  # type: ignore[arg-type]


def test_a_coach_reply_to_an_answer_says_the_note_first_and_tells_the_model() -> None:
    c, _ = coach(common_pb2.PERSONA_COACH)
    turn = reply()
    c.prepare(turn)
    assert turn.prelude == "You said 'um' and similar fillers 4 times in that answer; try a short silent pause instead."
    assert turn.request.history[-1].role == common_pb2.ROLE_SYSTEM and turn.prelude in turn.request.history[-1].text


def test_no_note_outside_coach_interviews_coding_mode_or_replies_to_answers() -> None:
    for persona, mode, task in ((common_pb2.PERSONA_INTERVIEWER, common_pb2.MODE_CONVERSATIONAL, llm_pb2.TASK_REPLY),
                                (common_pb2.PERSONA_COACH, common_pb2.MODE_CODING, llm_pb2.TASK_REPLY),
                                (common_pb2.PERSONA_COACH, common_pb2.MODE_CONVERSATIONAL, llm_pb2.TASK_CHECK_IN)):
        c, _ = coach(persona, mode)
        turn = reply(task)
        c.prepare(turn)
        assert turn.prelude == "" and turn.coaching is None and not turn.request.history


NOTE_4 = "You said 'um' and similar fillers 4 times in that answer; try a short silent pause instead."


async def test_when_the_reply_is_over_the_note_is_recorded_spoken_only_if_heard_whole() -> None:
    for played, spoken in ((8000, False), (32000, True)):  # half the note (a barge-in), or all of it
        published: list[interviews_pb2.CoachingNote] = []

        async def publish(**event: Any) -> None:
            published.append(event["coaching"])
        c, _ = coach(common_pb2.PERSONA_COACH, publish=publish)
        turn = reply()
        c.prepare(turn)
        turn.log.add_chunk(0, 16000, turn.prelude)
        turn.log.add_chunk(16000, 16000, "What was the hardest part?")
        turn.samples_played, turn.user_committed = played, True
        c.done(turn)
        c.done(turn)  # once per reply
        await asyncio.sleep(0.01)
        assert published == [interviews_pb2.CoachingNote(text=NOTE_4, metric=coaching.FILLER_RATE, spoken=spoken)]
        assert c.rules.previous == (coaching.FILLER_RATE if spoken else None)  # unheard: counts for no rule
        assert (c.rules.last_at is not None) is spoken


async def test_a_reply_withdrawn_before_the_answer_was_committed_records_nothing() -> None:
    published: list[Any] = []

    async def publish(**event: Any) -> None:
        published.append(event)
    c, _ = coach(common_pb2.PERSONA_COACH, publish=publish)
    turn = reply()
    c.prepare(turn)
    c.done(turn)  # user_committed is False: the candidate went on, the answer is not over
    await asyncio.sleep(0.01)
    assert published == [] and c.rules.previous is None and turn.coaching is None
