"""Record-keeping of a live session: transcript entries (durable, through the outbox), the LLM
history that mirrors them, the candidate's words not yet answered, and what a cut-off now
would leave in flight.

Entry ids are deterministic (session id + counters, the generation id for agent turns), so the
in-flight marker's copy of an entry and its normal write are the same entry: a crash never
writes one twice. Every record is covered by the marker until the store has it.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from interview.v1 import common_pb2, interviews_pb2, llm_pb2
from services.common.clock import Clock
from services.common.plan_questions import asked_in
from services.orchestrator.conversation.history import History
from services.orchestrator.conversation.interview_view import InterviewView
from services.orchestrator.store.outbox import TranscriptOutbox
from services.common.confidence import word_weighted
from services.orchestrator.store.store import Appended, timestamp

log = logging.getLogger("conversation.transcript")

USER, AGENT, SYSTEM = common_pb2.ROLE_USER, common_pb2.ROLE_AGENT, common_pb2.ROLE_SYSTEM

Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]
InFlight = tuple[str, float, str]  # (text heard so far, start time, entry id)
Write = asyncio.Task[asyncio.Future[Appended]]  # a record's write (Transcript.record)


class Transcript:
    def __init__(self, *, view: InterviewView, session_id: str, clock: Clock, history: History,
                 outbox: TranscriptOutbox, spawn: Spawn, changed: Callable[[], None]):
        self.view, self.session_id, self.clock = view, session_id, clock
        self.history = history
        self.outbox = outbox
        self._spawn = spawn
        self._changed = changed  # the in-flight marker's kick
        self.asked: set[str] = set()  # planned questions asked so far, beyond the history window
        self.pending_user: list[str] = []  # transcribed, not yet answered (merged into one turn)
        self._pending_scores: list[tuple[float, int]] = []  # (STT confidence, words) of each pending_user
        self._pending_since: float | None = None
        self._user_group = 0  # numbers the user entry the pending words will become
        self._entry_seq = 0
        self._unwritten: dict[str, interviews_pb2.TranscriptEntry] = {}  # in the outbox, not yet stored
        self.writes: set[asyncio.Task[Any]] = set()  # awaited, never cancelled, at the end
        self.recorded: Callable[[interviews_pb2.TranscriptEntry], None] | None = None  # sees each record (coaching)

    # ---- the candidate's pending words ----

    def add_pending(self, text: str, spoken_at: float, confidence: float = 0.0, words: int = 0) -> None:
        """One STT final; its confidence (0 = unknown) weighs by its words in the entry's."""
        if not self.pending_user:
            self._pending_since = spoken_at
        self.pending_user.append(text)
        self._pending_scores.append((confidence, words or len(text.split())))

    def clear_pending(self) -> None:
        self.pending_user, self._pending_scores = [], []

    def commit_user(self, n: int) -> Write:
        """The first `n` pending utterances become one entry (the words one reply answers), with
        their word-weighted STT confidence."""
        words, self.pending_user = self.pending_user[:n], self.pending_user[n:]
        scores, self._pending_scores = self._pending_scores[:n], self._pending_scores[n:]
        write = self.record(USER, " ".join(words), start=self._pending_since, entry_id=self.user_entry_id(),
                            stt_confidence=word_weighted(scores))
        self._user_group += 1
        return write

    def user_entry_id(self) -> str:
        return f"{self.session_id}-u{self._user_group}"

    def pending_text(self) -> str:
        return " ".join(self.pending_user)

    def pending_entry(self, ended: bool = True) -> interviews_pb2.TranscriptEntry | None:
        """The entry the pending words would become now (None: nothing pending)."""
        if not self.pending_user:
            return None
        return self.entry(USER, self.pending_text(), start=self._pending_since, entry_id=self.user_entry_id(),
                          ended=ended, stt_confidence=word_weighted(self._pending_scores))

    # ---- records ----

    def chat(self, role: int, text: str, interrupted: bool = False) -> llm_pb2.ChatMessage:
        return llm_pb2.ChatMessage(role=role, text=text, interrupted=interrupted, time=timestamp(self.clock.time()),
                                   mode=self.view.mode, phase_id=self.view.phase_id)

    def note(self, text: str) -> None:
        """A system note for the LLM (mode, phase); not a transcript entry."""
        self.history.add(self.chat(SYSTEM, text))

    def entry(self, role: int, text: str, *, start: float | None = None, interrupted: bool = False,
              incomplete: bool = False, entry_id: str = "", ended: bool = True,
              stt_confidence: float = 0.0) -> interviews_pb2.TranscriptEntry:
        if not entry_id:
            self._entry_seq += 1
            entry_id = f"{self.session_id}-e{self._entry_seq}"
        now = self.clock.time()
        entry = interviews_pb2.TranscriptEntry(
            interview_id=self.view.iid, session_id=self.session_id, role=role, text=text,
            start_time=timestamp(start or now), mode=self.view.mode, phase_id=self.view.phase_id,
            interrupted=interrupted, incomplete=incomplete, entry_id=entry_id, stt_confidence=stt_confidence)
        if ended:
            entry.end_time.CopyFrom(timestamp(now))
        return entry

    def record(self, role: int, text: str, *, start: float | None = None, interrupted: bool = False,
               entry_id: str = "", stt_confidence: float = 0.0) -> Write:
        """History + a durable transcript entry (through the outbox, covered by the in-flight
        marker until it is stored). Returns the write: it ends once the outbox took the entry,
        with the future of its store result (its sequence)."""
        self.history.add(self.chat(role, text, interrupted))
        if role == AGENT:
            self.asked |= asked_in(self.view.interview.plan, [text])
        entry = self.entry(role, text, start=start, interrupted=interrupted, entry_id=entry_id,
                           stt_confidence=stt_confidence)
        self._unwritten[entry.entry_id] = entry
        self._changed()
        if self.recorded is not None:
            self.recorded(entry)
        task = self._spawn(self._write(entry), "transcript")
        self.writes.add(task)
        task.add_done_callback(self.writes.discard)
        return task

    async def _write(self, entry: interviews_pb2.TranscriptEntry) -> asyncio.Future[Appended]:
        stored = await self.outbox.put(entry)
        stored.add_done_callback(lambda f: self._stored(entry.entry_id, f))
        return stored

    def _stored(self, entry_id: str, f: asyncio.Future[Any]) -> None:
        """Refused (fenced) entries stay in the marker: the next owner writes them."""
        if not f.cancelled() and f.exception() is None:
            self._unwritten.pop(entry_id, None)
            self._changed()

    # ---- what a cut-off now would leave ----

    def in_flight(self, utterance: tuple[str, float, int] | None, agent: InFlight | None,
                  ended: bool = False) -> list[interviews_pb2.TranscriptEntry]:
        """Words not yet answered, the utterance in progress (incomplete), the agent turn as heard
        so far (incomplete). Not `ended` (the marker): no end time, so the content only changes
        when the turns do."""
        out = []
        if (pending := self.pending_entry(ended)) is not None:
            out.append(pending)
        if utterance is not None:
            text, start, number = utterance
            out.append(self.entry(USER, text, start=start, incomplete=True, entry_id=f"{self.session_id}-p{number}",
                                  ended=ended))
        if agent is not None:
            text, start, entry_id = agent
            out.append(self.entry(AGENT, text, start=start, incomplete=True, entry_id=entry_id, ended=ended))
        return out

    def marker(self, utterance: tuple[str, float, int] | None, agent: InFlight | None
               ) -> list[interviews_pb2.TranscriptEntry]:
        """The in-flight marker's content: entries still in the outbox, then the turns in flight."""
        return list(self._unwritten.values()) + self.in_flight(utterance, agent)
