"""Live coaching in a practice (COACH) interview: after an answer, at most one short note from its
measurements ("That answer ran about 3 minutes; aim for under 2 ..."), said by the interviewer
first in its reply and recorded as an `Event.coaching` tied to the answer's sequence numbers.

Why the orchestrator says it (TTS, ahead of the LLM's words) instead of asking the model to: the
note is exactly the measured fact (never rephrased into a score), costs no extra LLM call, and
works the same on every provider, the offline scripted one included. The model is told in a
system note of that request that it was said, so it does not say it again.

The words come from evaluation/coaching.py (`live_notes`, measured with interview_metrics.py);
`CoachRules` decides whether to say one:
- COACH persona, CONVERSATIONAL mode, a reply to the candidate's answer (TASK_REPLY / WRAP_UP);
- at most one note per answer: the most useful one the measurements support;
- never the metric of the note the previous answer got;
- at most one note per `min_gap_s` of the interview;
- a note the candidate did not hear whole (they barged in on it) is recorded with spoken=false and
  counts for neither rule. A reply withdrawn before any of it played records nothing: the answer
  was not over, and the next reply decides on the whole of it.
"""
from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from interview.v1 import common_pb2, interviews_pb2
from services.common.clock import Clock
from services.orchestrator.conversation.interview_view import InterviewView
from services.orchestrator.conversation.llm_request import ANSWERS
from services.orchestrator.conversation.transcript import SYSTEM, Spawn, Transcript, Write
from services.orchestrator.conversation.turns import AgentTurn
from services.orchestrator.evaluation.coaching import Note, live_notes
from services.orchestrator.store.store import TRANSIENT, StoreError

log = logging.getLogger("conversation.coaching")

MIN_GAP_S = 60.0
ENTRIES_KEPT = 400  # the talk ratio's window: the session's latest entries
SAID = ("Coaching note already said to the candidate at the start of this turn, before your words: \"{}\" "
        "Do not repeat it or add another remark on the same point.")


class CoachRules:
    """When a note is said (pure: the transcript so far and the clock in, a Note or None out)."""

    def __init__(self, min_gap_s: float = MIN_GAP_S):
        self.min_gap_s = min_gap_s
        self.previous: str | None = None  # the metric of the note the previous answer heard
        self.last_at: float | None = None  # when the last heard note was given

    def choose(self, entries: Sequence[interviews_pb2.TranscriptEntry], now: float) -> Note | None:
        """The note for the answer that ends `entries`, if one is due."""
        if self.last_at is not None and now - self.last_at < self.min_gap_s:
            return None
        return next((n for n in live_notes(entries) if n.metric != self.previous), None)

    def answered(self, note: Note | None, spoken: bool, now: float) -> None:
        """The reply to an answer is over; `note` was put in it (None: no note), heard or not."""
        heard = note is not None and spoken
        self.previous = note.metric if heard and note is not None else None
        if heard:
            self.last_at = now


@dataclass
class Decision:
    """What the coach decided for the answer one turn replies to."""

    note: Note | None


class Coach:
    """The floor's coaching hooks: `prepare` as a reply to an answer is built, `done` when it is over."""

    def __init__(self, *, view: InterviewView, transcript: Transcript, clock: Clock, spawn: Spawn,
                 publish: Callable[..., Coroutine[Any, Any, None]], rules: CoachRules | None = None):
        self.view, self.transcript, self.clock, self._spawn, self._publish = view, transcript, clock, spawn, publish
        self.on = view.interview.persona == common_pb2.PERSONA_COACH
        self.rules = rules or CoachRules()
        self.entries: deque[interviews_pb2.TranscriptEntry] = deque(maxlen=ENTRIES_KEPT)
        if self.on:
            transcript.recorded = self.entries.append

    def prepare(self, turn: AgentTurn) -> None:
        """A reply to the pending answer is about to be generated: its note, if any, goes first."""
        if not self.on or turn.task not in ANSWERS or self.view.coding():
            return
        if (pending := self.transcript.pending_entry()) is None:
            return
        note = self.rules.choose([*self.entries, pending], self.clock.time())
        turn.coaching = Decision(note)
        if note is not None:
            turn.prelude = note.text
            turn.request.history.append(self.transcript.chat(SYSTEM, SAID.format(note.text)))

    def done(self, turn: AgentTurn) -> None:
        """The reply is over (played, or cut off by a barge-in). Its answer's note is recorded once
        the answer is an entry; a reply that committed no answer (withdrawn, nothing heard) leaves
        the decision to the next one."""
        decision, turn.coaching = turn.coaching, None
        if not isinstance(decision, Decision) or not turn.user_committed:
            return
        note = decision.note
        spoken = note is not None and len(turn.heard_text().split()) >= len(note.text.split())
        self.rules.answered(note, spoken, self.clock.time())
        if note is not None:
            log.info("coaching note", extra={"metric": note.metric, "spoken": spoken,
                                             "generation_id": turn.generation_id})
            self._spawn(self._record(note, spoken, turn.user_write), "coaching")

    async def _record(self, note: Note, spoken: bool, write: Write | None) -> None:
        """The Event.coaching, once the answer's entry is stored (its sequence is known then)."""
        sequences = []
        if write is not None:
            try:
                sequences.append((await (await write)).sequence)
            except (StoreError, *TRANSIENT) as exc:  # refused (fenced): the note is recorded without it
                log.warning("coaching note: the answer's entry was not stored", extra={"error": str(exc)[:200]})
        await self._publish(coaching=interviews_pb2.CoachingNote(
            text=note.text, metric=note.metric, sequences=sequences, spoken=spoken))
