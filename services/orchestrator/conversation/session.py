"""One live session (one candidate): its lifecycle, and the routing between its rooms.

    media audio ─► Listener (VAD, gated STT) ──events──► Session ─► Floor (turns, barge-in)
    media frames, consent ─► Vision (Video.Analyze) ─► observations ─► events, LLM context
    control stream ─► Ownership ──events──► Session ─► InterviewView, Listener, Floor
    Floor / Session ─► Transcript (entries, history) ─► outbox ─► Redis

Every task of the session is spawned through `Session.spawn` and cancelled by `Session.stop`; an
exception in any of them ends this session only (SessionEnd{"error: ..."}), never another. State
changes run on the event loop, one task at a time per event, so the state needs no locks.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from interview.v1 import common_pb2, interviews_pb2, llm_pb2, session_pb2
from services.common import logs, metrics
from services.common.clock import Clock
from services.common.plan_questions import asked_in
from services.orchestrator.api.interviews import LINK_REISSUED
from services.orchestrator.conversation import ending, modes, resume
from services.orchestrator.conversation.floor import Floor
from services.orchestrator.conversation.history import History
from services.orchestrator.conversation.interview_view import InterviewView
from services.orchestrator.conversation.heard import (EarlySpeech, Final, Heard, Interim, SpeechResumed, SpeechStarted,
                                                      SpeechStopped, TurnPaused, TurnScoringUnavailable)
from services.orchestrator.conversation.listener import Listener, SessionFailed
from services.orchestrator.conversation.llm_request import LlmRequests
from services.orchestrator.conversation.outbound import Outbound
from services.orchestrator.conversation.ownership import Ownership
from services.orchestrator.conversation.settings import LoopSettings, Stubs
from services.orchestrator.conversation.transcript import AGENT, Transcript
from services.orchestrator.conversation.vision import Vision
from services.orchestrator.store.outbox import TranscriptOutbox
from services.orchestrator.store.spill import SpillFile
from services.orchestrator.store.store import InterviewStore

log = logging.getLogger("conversation.session")

OUTBOX_SIZE = 256


class Session:
    def __init__(self, *, interview: interviews_pb2.Interview, session_id: str, owner: str, epoch: int,
                 control_cursor: str, store: InterviewStore, api: Any, stubs: Stubs, settings: LoopSettings,
                 clock: Clock, input_rate: int, playback_rate: int, earlier: resume.Earlier | None = None,
                 spill: SpillFile | None = None):
        self.interview, self.iid, self.session_id = interview, interview.id, session_id
        self.clock = clock
        self.view = InterviewView(interview, clock, conversational_silence_ms=settings.conversational_silence_ms,
                                  coding_silence_ms=settings.coding_silence_ms, check_in_s=settings.check_in_s)
        self.outbound = Outbound()
        self.outbox = TranscriptOutbox(store, size=OUTBOX_SIZE, epoch=epoch)
        self.spill = spill  # where the outbox's leftovers go when Redis is down at the end
        self.history = History(settings.history_max_messages, settings.history_max_chars)
        self.ownership = Ownership(store, self.iid, owner=owner, epoch=epoch, lease_ttl_ms=settings.lease_ttl_ms,
                                   control_cursor=control_cursor, marker=self._marker, apply=self.apply_event,
                                   lost=lambda: self.stop("replaced"))
        self.transcript = Transcript(view=self.view, session_id=session_id, clock=clock, history=self.history,
                                     outbox=self.outbox, spawn=self.spawn, changed=self.ownership.kick)
        self.requests = LlmRequests(self.view, self.history, self.transcript, session_id)
        self.history.summarize = self.requests.summarizer(stubs.llm)
        self.listener = Listener(
            vad_stub=stubs.vad, stt_stub=stubs.stt, hooks=self, clock=clock, input_rate=input_rate,
            stream_id=session_id, stt_provider=settings.stt_provider, language=interview.config.language or "en-US",
            pre_roll_ms=settings.pre_roll_ms, early_pause_ms=settings.barge_in_pause_ms, params=self.view.vad_params(),
            finalize_at_pause_ms=settings.finalize_at_pause_ms, trace_attributes={"interview_id": self.iid, "session_id": session_id})
        self.floor = Floor(session_id=session_id, view=self.view, transcript=self.transcript, requests=self.requests,
                           listener=self.listener, outbound=self.outbound, api=api, stubs=stubs, settings=settings,
                           clock=clock, playback_rate=playback_rate, spawn=self.spawn, stopped=lambda: self.stopped,
                           changed=self.ownership.kick, publish=self.ownership.append_event)
        self.vision = Vision(stub=stubs.video, interview=interview, stream_id=session_id, clock=clock,
                             phase_kind=lambda: (p.kind if (p := self.view.phase()) else 0),
                             to_media=self.outbound.control, record=self.ownership.append_event)
        self.requests.observations = self.vision.recent
        self.tasks: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()
        self._finished = asyncio.Event()  # run() returned: the shutdown's writes are done
        self.end_reason = ""
        self.failure: SessionFailed | None = None
        self._opening = llm_pb2.TASK_GREETING
        self._older: list[llm_pb2.ChatMessage] = []  # earlier messages the history could not keep
        if earlier is not None:
            self._pick_up(earlier)

    # ---- lifecycle ----

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a task owned by this session: cancelled by stop(); its failure ends the session."""
        task = asyncio.create_task(coro, name=f"{self.iid}:{name}")
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if task.cancelled() or self._stopped.is_set():
            return
        exc = task.exception()
        if isinstance(exc, SessionFailed):
            self.failure = exc
            self.stop(f"error: {exc}")
        elif exc is not None:
            log.error("session task failed", exc_info=exc, extra={"task": task.get_name()})
            self.stop(f"error: {type(exc).__name__}: {str(exc)[:200]}")

    def stop(self, reason: str) -> None:
        if self._stopped.is_set():
            return
        self.end_reason = reason
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    async def run(self, requests: AsyncIterator[session_pb2.ClientMessage]) -> None:
        """Run until media leaves, the interview ends, a newer session replaces this one or a task fails."""
        with logs.bind(interview_id=self.iid, session_id=self.session_id):
            self.outbox.start()
            self.spawn(self.listener.vad.run(), "vad")
            self.spawn(self.listener.stt.run(), "stt")
            self.spawn(self._read_media(requests), "media")
            self.spawn(self.vision.run(), "video")
            for name, loop in self.ownership.loops().items():
                self.spawn(loop, name)  # type: ignore[arg-type]
            self.apply_mode(self.interview.mode or common_pb2.MODE_CONVERSATIONAL, "join", note=False)
            self.vision.retune("join")
            if self._older:
                older, self._older = self._older, []
                self.spawn(self.history.absorb(older), "summarize-earlier")
            self.floor.start_turn(self._opening)
            try:
                with metrics.ACTIVE_SESSIONS.track_inprogress():
                    await self._stopped.wait()
                await ending.shut_down(self)
            finally:
                self._finished.set()

    async def stop_and_wait(self, reason: str, timeout_s: float) -> bool:
        """Stop, and wait (bounded) until the shutdown's writes are done; False on timeout."""
        self.stop(reason)
        try:
            async with asyncio.timeout(timeout_s):
                await self._finished.wait()
            return True
        except TimeoutError:
            return False

    def _pick_up(self, earlier: resume.Earlier) -> None:
        """A rejoin: the phase clock runs from the phase's start; a talking interview resumes, no greeting."""
        started = resume.phase_started_at(self.interview, earlier.phase_change)
        if started is not None:
            self.view.phase_started = resume.monotonic_at(self.clock, started)
        if earlier.messages:
            self.transcript.asked = asked_in(self.interview.plan, [m.text for m in earlier.messages if m.role == AGENT])
            self._older = self.history.restore(earlier.messages)
            self._opening = llm_pb2.TASK_RESUME
        log.info("picking the interview up", extra={
            "interview_id": self.iid, "messages": len(self.history.messages), "older": len(self._older),
            "phase_time_left_s": self.view.phase_time_left_s()})

    def _marker(self) -> list[interviews_pb2.TranscriptEntry]:
        return self.transcript.marker(self.listener.in_progress(), self.floor.in_progress())

    # ---- routing ----

    async def _read_media(self, requests: AsyncIterator[session_pb2.ClientMessage]) -> None:
        async for msg in requests:
            kind = msg.WhichOneof("msg")
            if kind == "audio":
                self.listener.audio(msg.audio)
            elif kind == "mark":
                self.floor.mark(msg.mark)
            elif kind == "frame":
                self.vision.frame(msg.frame)
            elif kind == "consent":
                self.vision.set_consent(msg.consent.consent)
            elif kind == "leave":
                self.stop(f"left: {msg.leave.reason or 'hangup'}")
                return
            elif kind == "join":
                raise SessionFailed("Join sent twice: a stream joins once, first")
            elif kind is None:
                raise SessionFailed("empty ClientMessage: set one of its fields")
        self.stop("disconnected")

    def heard(self, event: Heard) -> None:
        """The Listener's events (ListenerHooks)."""
        match event:
            case SpeechStarted():
                self.floor.speech_started()
            case EarlySpeech():
                self.floor.early_speech(event)
            case SpeechStopped():
                self.floor.speech_stopped(event)
            case TurnPaused():
                self.floor.turn_paused(event)
            case SpeechResumed():
                self.floor.speech_resumed()
            case TurnScoringUnavailable():
                self.floor.eot.unavailable()
            case Interim():
                self.ownership.kick()
                self.floor.interim(event)
            case Final():
                self.ownership.kick()
                self.floor.final(event)

    def apply_mode(self, mode: int, reason: str, note: bool = True) -> None:
        """The one code path of a mode change: VAD params on the live stream, the LLM's system
        note, the check-in timer, the state down to media."""
        self.interview.mode = mode
        self.listener.set_params(self.view.vad_params())
        self.floor.configure_turns()
        if note:
            self.transcript.note(modes.NOTES.get(mode, ""))
        self.floor.timer.set_mode(self.view.coding(), self.view.check_in_timeout_s())
        self.floor.send_state()
        self.vision.retune("mode")
        log.info("mode applied", extra={"mode": common_pb2.Mode.Name(mode), "reason": reason})

    def apply_event(self, event: interviews_pb2.Event) -> None:
        """A control-stream entry (UpdateConfig, SetPhase, code events, End), from any instance."""
        kind = event.WhichOneof("payload")
        if kind == "mode_changed":
            self.apply_mode(event.mode_changed.to_mode, event.mode_changed.reason)
        elif kind == "config_changed":
            self.interview.config.CopyFrom(event.config_changed.config)
            self.apply_mode(self.interview.mode, "config", note=False)
        elif kind == "phase_changed":
            self.transcript.note(self.view.set_phase(event.phase_changed.to_phase_id))
            self.floor.send_state()
            self.vision.retune("phase")
        elif kind == "code_event":
            self.view.set_code(event.code_event.code)
        elif kind == "lifecycle" and event.lifecycle.kind == interviews_pb2.Lifecycle.ENDED:
            self.interview.status = session_pb2.INTERVIEW_ENDED
            self.stop(event.lifecycle.reason or "ended")
        elif kind == "lifecycle" and event.lifecycle.kind == interviews_pb2.Lifecycle.SESSION_LEFT \
                and event.lifecycle.reason == LINK_REISSUED:
            self.stop(LINK_REISSUED)  # ReissueJoinLink: this session's link and credential are revoked


def new_session_id() -> str:
    return "s_" + secrets.token_hex(6)
