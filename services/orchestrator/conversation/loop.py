"""The conversation loop of one live session (one candidate): media audio → VAD → gated STT →
transcript → LLM → TTS → media, with two-stage barge-in, modes, check-ins and phases.

Every task of the session is spawned through `Session.spawn` and cancelled by `Session.stop`;
an exception in any of them ends this session only (SessionEnd{"error: ..."}), never another.
Everything that changes state runs on the event loop in one task at a time per event, so the
state below needs no locks.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
from opentelemetry import trace

from interview.v1 import (common_pb2, interviews_pb2, llm_pb2, session_pb2, stt_pb2, tts_pb2, vad_pb2)
from services.common import errors, logs, telemetry
from services.common.audio import PreRoll
from services.common.clock import Clock
from services.common.plan_questions import asked_in
from services.orchestrator.conversation import modes, resume
from services.orchestrator.conversation.barge_in import BargeIn, Stage
from services.orchestrator.conversation.clients import ReopeningStream
from services.orchestrator.conversation.history import History
from services.orchestrator.conversation.inflight import InflightMarker
from services.orchestrator.conversation.metrics import turn_metrics
from services.orchestrator.conversation.outbound import Outbound
from services.orchestrator.conversation.silence_timer import SilenceTimer
from services.orchestrator.conversation.turns import AgentTurn, TurnTimes
from services.orchestrator.store.outbox import TranscriptOutbox
from services.orchestrator.store.store import TRANSIENT, Fenced, InterviewStore, StoreError, timestamp

log = logging.getLogger("conversation.loop")
tracer = trace.get_tracer("orchestrator.conversation")

USER, AGENT, SYSTEM = common_pb2.ROLE_USER, common_pb2.ROLE_AGENT, common_pb2.ROLE_SYSTEM
ANSWERS = (llm_pb2.TASK_REPLY, llm_pb2.TASK_WRAP_UP)  # tasks that answer the candidate's pending words


@dataclass(frozen=True)
class LoopSettings:
    """The loop's knobs (from OrchestratorConfig; tests build their own)."""

    stt_provider: str = ""
    tts_provider: str = ""
    pre_roll_ms: int = 500
    barge_in_commit_ms: int = 500
    barge_in_pause_ms: int = 128
    conversational_silence_ms: int = 1200
    coding_silence_ms: int = 3000
    check_in_s: float = 90.0
    lease_ttl_ms: int = 10_000
    history_max_messages: int = 40
    history_max_chars: int = 24_000
    playback_margin_ms: int = 300


@dataclass
class Stubs:
    vad: Any
    stt: Any
    llm: Any
    tts: Any


class SessionFailed(errors.InvalidArgument):
    """Bad input from media: ends the stream with its status and a message for a person."""


class Session:
    def __init__(self, *, interview: interviews_pb2.Interview, session_id: str, owner: str, epoch: int,
                 control_cursor: str, store: InterviewStore, api: Any, stubs: Stubs, settings: LoopSettings,
                 clock: Clock, input_rate: int, playback_rate: int, earlier: resume.Earlier | None = None):
        self.interview = interview
        self.iid = interview.id
        self.session_id = session_id
        self.owner = owner
        self.epoch = epoch
        self.store = store
        self.api = api
        self.stubs = stubs
        self.s = settings
        self.clock = clock
        self.input_rate = input_rate
        self.playback_rate = playback_rate
        self.outbound = Outbound()
        self.outbox = TranscriptOutbox(store, size=256, epoch=epoch)
        self.history = History(settings.history_max_messages, settings.history_max_chars)
        self.barge = BargeIn(clock, pause=self._pause, resume=self._resume, commit=self._commit_barge_in,
                             commit_after_s=settings.barge_in_commit_ms / 1000, still_speaking=self._voiced_recently)
        self.timer = SilenceTimer(clock, self._check_in, modes.check_in_timeout_s(interview.config, settings.check_in_s))
        self.preroll = PreRoll(int((settings.pre_roll_ms + 2000) * input_rate / 1000))
        self._control_cursor = control_cursor
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writes: set[asyncio.Task[Any]] = set()  # transcript puts: awaited, never cancelled, at the end
        self._stopped = asyncio.Event()
        self._finished = asyncio.Event()  # run() returned: the shutdown's writes are done
        self.end_reason = ""
        self.failure: SessionFailed | None = None
        self._audio_end = -1
        self.user_speaking = False
        self._gate_open = False
        self._stt_end = 0  # end of the audio sent on the current STT stream
        self._speech_start = 0
        self._finalizing: list[str] = []      # FINALIZE ids sent, not yet answered (in order)
        self._finalize_seq = 0
        self._utterance_start_time = 0.0
        self._vad_stop_at: float | None = None
        self._utterance_trace = common_pb2.TraceContext()
        self._latest_interim = ""
        self._last_voiced = -1  # end of the last window VAD scored as speech (probabilities stream)
        self._voiced_from = 0  # start of the current run of voiced windows
        self.pending_user: list[str] = []      # transcribed, not yet answered (merged into one turn)
        self._pending_user_time: float | None = None
        self.turn: AgentTurn | None = None
        self._resumed = False
        self._turn_task: asyncio.Task[None] | None = None
        self._generation_seq = 0
        self._entry_seq = 0
        self._phase_started = clock.monotonic()
        self._opening = llm_pb2.TASK_GREETING
        self._asked: set[str] = set()  # planned questions asked so far, beyond the history window
        self._older: list[llm_pb2.ChatMessage] = []  # earlier messages the history could not keep
        self._code: common_pb2.CodeSnapshot | None = None
        self._ending_after_turn = False
        self.metrics: list[interviews_pb2.TurnMetrics] = []
        self.check_ins = 0
        self._turn_started = 0.0
        self._wrapped_phase = ""
        self._user_group = 0   # numbers the user entry the pending words will become
        self._utterance_no = 0
        self._unwritten: dict[str, interviews_pb2.TranscriptEntry] = {}  # put in the outbox, not yet stored
        self.inflight = InflightMarker(store, self.iid, epoch, self._inflight_entries)
        self.vad = ReopeningStream[vad_pb2.DetectRequest, vad_pb2.DetectResponse](
            "vad", lambda reqs: stubs.vad.Detect(reqs), self._vad_first, self._on_vad, self._on_vad_reopen)
        self.stt = ReopeningStream[stt_pb2.RecognizeRequest, stt_pb2.RecognizeResponse](
            "stt", lambda reqs: stubs.stt.Recognize(reqs), self._stt_first, self._on_stt, self._on_stt_reopen)
        if earlier is not None:
            self._pick_up(earlier)

    # ---- lifecycle ----

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Start a task owned by this session: cancelled by stop(); its failure ends the session."""
        task = asyncio.create_task(coro, name=f"{self.iid}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
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
            self.spawn(self.vad.run(), "vad")
            self.spawn(self.stt.run(), "stt")
            self.spawn(self._read_media(requests), "media")
            self.spawn(self._control_loop(), "control")
            self.spawn(self._lease_loop(), "lease")
            self.spawn(self._inflight_loop(), "inflight")
            self.apply_mode(self.interview.mode or common_pb2.MODE_CONVERSATIONAL, "join", note=False)
            if self._older:
                older, self._older = self._older, []
                self.spawn(self.history.absorb(older, self._summarize), "summarize-earlier")
            self._start_turn(self._opening)
            try:
                await self._stopped.wait()
                await self._shutdown()
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
        """A rejoin: the phase clock runs from when the phase began, and an interview that was
        already talking opens with TASK_RESUME over the conversation so far, not a greeting."""
        started = resume.phase_started_at(self.interview, earlier.phase_change)
        if started is not None:
            self._phase_started = resume.monotonic_at(self.clock, started)
        if earlier.messages:
            self._asked = asked_in(self.interview.plan, [m.text for m in earlier.messages if m.role == AGENT])
            self._older = self.history.restore(earlier.messages)
            self._opening = llm_pb2.TASK_RESUME
        log.info("picking the interview up", extra={
            "interview_id": self.iid, "messages": len(self.history.messages), "older": len(self._older),
            "phase_time_left_s": self._phase_time_left_s()})

    async def _shutdown(self) -> None:
        log.info("session ending", extra={"reason": self.end_reason})
        self.timer.cancel()
        self.barge.turn_finished()
        cut = self._cut_off_entries()
        tasks = [t for t in self._tasks if t not in self._writes]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*self._writes, return_exceptions=True)
        for entry in cut:
            await self.outbox.put(entry)
        drained = True
        try:
            await asyncio.wait_for(self.outbox.drain(), 3.0)
        except asyncio.TimeoutError:
            drained = False
            log.error("transcript entries still pending at session end", extra={"pending": self.outbox.pending})
        await self.outbox.close()
        if self.end_reason != "replaced":
            if drained:  # else the marker stays: the next owner writes what is missing
                await self._quietly(self.store.set_inflight(self.iid, self.epoch, []))
            await self._quietly(self.store.append_event(self.store.event(self.iid, lifecycle=interviews_pb2.Lifecycle(
                kind=interviews_pb2.Lifecycle.SESSION_LEFT, reason=self.end_reason, session_id=self.session_id)),
                epoch=self.epoch))
            await self._quietly(self.store.release_lease(self.iid, self.owner, self.epoch))
        if self.failure is None:
            self.outbound.control(session_pb2.ServerMessage(end=session_pb2.SessionEnd(reason=self.end_reason)))
        self.outbound.close()

    def _cut_off_entries(self) -> list[interviews_pb2.TranscriptEntry]:
        """A turn cut off by the disconnect is closed as an incomplete entry, never dropped."""
        out = self._in_flight_turns(ended=True)
        self.pending_user = []
        if self.turn is not None and self.turn.sent_any_audio:
            self.turn.cancel_calls()
            self.turn = None
        return out

    def _in_flight_turns(self, ended: bool = False) -> list[interviews_pb2.TranscriptEntry]:
        """What a cut-off now would write: words not yet answered, the utterance in progress
        (incomplete), the agent turn as heard so far (incomplete). Entry ids are the ones the
        normal writes use, so a crash-time copy never duplicates a written entry. Not `ended`
        (the marker): no end time, so the content only changes when the turns do."""
        out = []
        if self.pending_user:
            out.append(self._entry(USER, " ".join(self.pending_user), start=self._pending_user_time,
                                   entry_id=self._user_entry_id(), ended=ended))
        if self.user_speaking and self._latest_interim:
            out.append(self._entry(USER, self._latest_interim, start=self._utterance_start_time, incomplete=True,
                                   entry_id=f"{self.session_id}-p{self._utterance_no}", ended=ended))
        turn = self.turn
        if turn is not None and turn.sent_any_audio:
            out.append(self._entry(AGENT, turn.heard_text(), start=self._turn_started, incomplete=True,
                                   entry_id=self._agent_entry_id(turn), ended=ended))
        return out

    def _inflight_entries(self) -> list[interviews_pb2.TranscriptEntry]:
        return list(self._unwritten.values()) + self._in_flight_turns()

    async def _inflight_loop(self) -> None:
        try:
            await self.inflight.run()
        except Fenced:
            self.stop("replaced")

    def _user_entry_id(self) -> str:
        return f"{self.session_id}-u{self._user_group}"

    @staticmethod
    def _agent_entry_id(turn: AgentTurn) -> str:
        return f"{turn.generation_id}-a"

    @staticmethod
    async def _quietly(aw: Any) -> None:
        try:
            await aw
        except (StoreError, *TRANSIENT) as exc:
            log.warning("store write at session end failed", extra={"error": str(exc)[:200]})

    # ---- media ----

    async def _read_media(self, requests: AsyncIterator[session_pb2.ClientMessage]) -> None:
        async for msg in requests:
            kind = msg.WhichOneof("msg")
            if kind == "audio":
                self._on_audio(msg.audio)
            elif kind == "mark":
                turn = self.turn
                if turn is not None and msg.mark.generation_id == turn.generation_id:
                    turn.mark(msg.mark)
                    self.inflight.kick()
                    if not turn.user_committed and turn.heard_text():
                        self._commit_user_turn(turn)  # the reply is being heard: no merge any more
            elif kind == "leave":
                self.stop(f"left: {msg.leave.reason or 'hangup'}")
                return
            elif kind == "join":
                raise SessionFailed("Join sent twice: a stream joins once, first")
            elif kind is None:
                raise SessionFailed("empty ClientMessage: set one of its fields")
            # frames and consent updates belong to the video issue: accepted, not analysed yet
        self.stop("disconnected")

    def _on_audio(self, chunk: common_pb2.AudioChunk) -> None:
        if len(chunk.pcm) % 2:
            raise SessionFailed(
                f"audio chunk of {len(chunk.pcm)} bytes: PCM s16le needs an even number of bytes")
        if chunk.offset_samples < self._audio_end:
            raise SessionFailed(
                f"audio offset_samples went backwards ({chunk.offset_samples} after a chunk ending "
                f"at {self._audio_end}); offsets must increase")
        samples = np.frombuffer(chunk.pcm, dtype=np.int16)
        self._audio_end = chunk.offset_samples + len(samples)
        self.preroll.push(samples, chunk.offset_samples)
        self.vad.send_audio(vad_pb2.DetectRequest(audio=chunk))
        if self._gate_open:
            self._to_stt(chunk)

    # ---- VAD ----

    def _vad_params(self) -> common_pb2.VadParams:
        return modes.vad_params(self.interview.mode, self.interview.config, self.s.conversational_silence_ms,
                                self.s.coding_silence_ms)

    def _vad_first(self) -> list[vad_pb2.DetectRequest]:
        return [vad_pb2.DetectRequest(config=vad_pb2.VadConfig(
            sample_rate_hz=self.input_rate, params=self._vad_params(), stream_id=self.session_id,
            emit_probabilities=True))]

    async def _on_vad_reopen(self) -> None:
        if self.user_speaking:  # the stop of this utterance died with the old stream
            self._speech_stopped(None)

    async def _on_vad(self, resp: vad_pb2.DetectResponse) -> None:
        kind = resp.WhichOneof("msg")
        if kind == "event":
            if resp.event.type == vad_pb2.SPEECH_STARTED:
                self._speech_started(resp.event.offset_samples)
            elif resp.event.type == vad_pb2.SPEECH_STOPPED:
                self._speech_stopped(resp.event)
        elif kind == "probability":
            p = resp.probability
            if p.probability >= (self._vad_params().activation_threshold or 0.5):
                window = int(0.032 * self.input_rate)  # Silero's window: 512 samples at 16 kHz
                if self._last_voiced < 0 or p.window_end_samples - self._last_voiced > window:
                    self._voiced_from = p.window_end_samples - window  # a new run of voiced windows
                self._last_voiced = p.window_end_samples
                # Stage one (PAUSE) needs no SPEECH_STARTED: it is reversible, so it fires after
                # barge_in_pause_ms of voiced windows, not after VAD's min speech (~250 ms later).
                # The commit still waits for a word or barge_in_commit_ms of speech.
                voiced_ms = (p.window_end_samples - self._voiced_from) * 1000 / self.input_rate
                if self.barge.stage is Stage.SPEAKING and voiced_ms >= self.s.barge_in_pause_ms:
                    if not self.user_speaking:  # SPEECH_STARTED (after min speech) confirms it
                        min_speech_s = (self._vad_params().min_speech_ms or 250) / 1000
                        self.barge.early_pause(confirm_within_s=min_speech_s + 0.25)
                    elif self._resumed:  # speech again after a false alarm, same VAD utterance
                        self._resumed = False
                        self.barge.speech_started()
        elif kind == "problem":
            log.warning("VAD refused params", extra={"problem": resp.problem.message})

    def _voiced_recently(self) -> bool:
        """Was the last ~250 ms of audio speech? (decides a barge-in against a cough)"""
        return self._audio_end - self._last_voiced <= int(0.25 * self.input_rate) + 512

    def _speech_started(self, offset: int) -> None:
        if self.user_speaking:
            return
        self.user_speaking = True
        self._utterance_no += 1
        self._resumed = False
        self._latest_interim = ""
        self._speech_start = offset
        self._utterance_start_time = self.clock.time()
        self._open_gate()
        self.barge.speech_started()

    def _open_gate(self) -> None:
        """Pre-roll first (never audio STT already has: its offsets must not go back), then live audio."""
        want = max(self._speech_start - int(self.s.pre_roll_ms * self.input_rate / 1000), self._stt_end)
        start, samples = self.preroll.since(want)
        if len(samples):
            self._to_stt(common_pb2.AudioChunk(pcm=samples.tobytes(), offset_samples=start))
        self._gate_open = True

    def _to_stt(self, chunk: common_pb2.AudioChunk) -> None:
        if self.stt.send_audio(stt_pb2.RecognizeRequest(audio=chunk)):
            self._stt_end = chunk.offset_samples + len(chunk.pcm) // 2

    def _speech_stopped(self, event: vad_pb2.VadEvent | None) -> None:
        if not self.user_speaking:
            return
        self.user_speaking = False
        self._gate_open = False
        self._vad_stop_at = self.clock.monotonic()
        span = tracer.start_span("turn", attributes={"interview_id": self.iid, "session_id": self.session_id})
        with trace.use_span(span, end_on_exit=True):
            self._utterance_trace = common_pb2.TraceContext()
            telemetry.inject(self._utterance_trace)
        self._finalize_seq += 1
        fid = f"{self.session_id}-f{self._finalize_seq}"
        self._finalizing.append(fid)
        self.stt.send(stt_pb2.RecognizeRequest(finalize=stt_pb2.Finalize(finalize_id=fid, trace=self._utterance_trace)))
        self.barge.speech_stopped()

    # ---- STT ----

    def _stt_first(self) -> list[stt_pb2.RecognizeRequest]:
        return [stt_pb2.RecognizeRequest(config=stt_pb2.SttConfig(
            provider=self.s.stt_provider, language=self.interview.config.language or "en-US",
            sample_rate_hz=self.input_rate, interim_results=True, stream_id=self.session_id))]

    async def _on_stt_reopen(self) -> None:
        """Re-send what the new stream needs: the utterance in progress and unanswered FINALIZEs."""
        self._stt_end = 0
        if self.user_speaking:
            self._open_gate()
        for fid in self._finalizing:
            self.stt.send(stt_pb2.RecognizeRequest(finalize=stt_pb2.Finalize(finalize_id=fid)))

    async def _on_stt(self, resp: stt_pb2.RecognizeResponse) -> None:
        if resp.WhichOneof("msg") != "result":
            return
        r = resp.result
        text = r.text.strip()
        self.inflight.kick()
        if not r.finalize_id:
            if text:
                self._latest_interim = text
                self.barge.stt_word()
                if not r.is_final:
                    self.outbound.control(session_pb2.ServerMessage(caption=session_pb2.Caption(role=USER, text=text)))
            return
        if r.finalize_id in self._finalizing:
            self._finalizing.remove(r.finalize_id)
        if text:
            self.barge.stt_word()
            self.outbound.control(session_pb2.ServerMessage(caption=session_pb2.Caption(role=USER, text=text,
                                                                                        is_final=True)))
            self.timer.utterance_transcribed()
            if not self.pending_user:
                self._pending_user_time = self._utterance_start_time
            self.pending_user.append(text)
        self._maybe_reply()

    def _maybe_reply(self) -> None:
        """Answer the pending words once the candidate is quiet and the agent is not speaking;
        words that arrive while the agent speaks are answered when its turn ends."""
        if self.pending_user and not self.user_speaking and not self._finalizing and self.turn is None:
            self._start_turn(llm_pb2.TASK_WRAP_UP if self._wrap_up_due() else llm_pb2.TASK_REPLY)

    # ---- agent turns ----

    def _start_turn(self, task: int) -> None:
        if self.stopped:
            return
        self._generation_seq += 1
        gid = f"{self.session_id}-g{self._generation_seq}"
        request = self._request(task, gid)
        turn = AgentTurn(gid, task, request, self.playback_rate, self.clock, self.outbound,
                         margin_s=self.s.playback_margin_ms / 1000,
                         times=TurnTimes(vad_stop=self._vad_stop_at, stt_final=self.clock.monotonic()
                                         if task in ANSWERS else None),
                         user_texts=list(self.pending_user) if task in ANSWERS else [],
                         on_first_audio=self._first_audio_sent)
        if task in ANSWERS:
            turn.trace.CopyFrom(self._utterance_trace)
        request.trace.CopyFrom(turn.trace)
        self.turn = turn
        self._turn_started = self.clock.time()
        self.barge.turn_started(gid)
        self.timer.agent_speaking(True)
        self._send_state()
        self._turn_task = self.spawn(self._run_turn(turn), f"turn-{gid}")

    def _request(self, task: int, gid: str) -> llm_pb2.GenerateRequest:
        iv = self.interview
        left = self._phase_time_left_s()
        ctx = llm_pb2.InterviewContext(plan=iv.plan, phase_id=iv.phase_id, phase_time_left_s=left, mode=iv.mode,
                                       candidate_name=iv.candidate.name, role=iv.role, summary=self.history.summary,
                                       asked_question_ids=sorted(self._asked))
        if self._code is not None:
            ctx.code.CopyFrom(self._code)
        history = list(self.history.messages)
        if task in ANSWERS and self.pending_user:
            history.append(self._chat(USER, " ".join(self.pending_user)))
        return llm_pb2.GenerateRequest(request_id=gid, persona=iv.persona, context=ctx, history=history, task=task,
                                       interview_id=self.iid)

    def _phase_time_left_s(self) -> int:
        phase = next((p for p in self.interview.plan.phases if p.id == self.interview.phase_id), None)
        if phase is None or not phase.time_budget_s:
            return 0
        return int(phase.time_budget_s - (self.clock.monotonic() - self._phase_started))

    def _wrap_up_due(self) -> bool:
        """Over the phase's budget, the next reply wraps the phase up (once per phase: if the LLM
        stays in it, e.g. the candidate is mid-answer, later turns are ordinary replies)."""
        if self.interview.phase_id == self._wrapped_phase or self._phase_time_left_s() >= 0:
            return False
        self._wrapped_phase = self.interview.phase_id
        log.info("phase over budget: wrapping up", extra={"phase_id": self._wrapped_phase})
        return True

    async def _run_turn(self, turn: AgentTurn) -> None:
        tts_cfg = tts_pb2.TtsConfig(provider=self.s.tts_provider, voice=self.interview.config.tts_voice,
                                    sample_rate_hz=self.playback_rate)
        try:
            await turn.run(self.stubs.llm, self.stubs.tts, tts_cfg)
        except* grpc.aio.AioRpcError as eg:
            exc: Any = eg.exceptions[0]
            log.error("agent turn failed", extra={"code": exc.code().name, "detail": (exc.details() or "")[:200]})
        if self.turn is not turn:
            return  # cancelled by a barge-in, which did the bookkeeping
        self._finish_turn(turn)

    def _first_audio_sent(self, turn: AgentTurn) -> None:
        self._publish_metrics(turn)

    def _finish_turn(self, turn: AgentTurn) -> None:
        self.turn = None
        self.barge.turn_finished()
        self.timer.agent_speaking(False)
        self._commit_user_turn(turn)  # also when no reply came (NO_REPLY)
        text = turn.log.text
        if turn.sent_any_audio and text:
            self._record(AGENT, text, entry_id=self._agent_entry_id(turn))
            self.outbound.control(session_pb2.ServerMessage(caption=session_pb2.Caption(
                role=AGENT, text=text, is_final=True, generation_id=turn.generation_id)))
        self._send_state()
        self._apply_actions(turn)
        if not self._ending_after_turn:
            self._maybe_reply()

    def _commit_user_turn(self, turn: AgentTurn) -> None:
        """The candidate's words a turn answers become one transcript entry once the reply's first
        words are heard (playback marks; without marks, when the turn ends) or none is coming, so
        speech resumed during the LLM/TTS latency merges into one entry. Words that arrived later
        stay pending for the next turn."""
        if turn.user_texts and not turn.user_committed:
            turn.user_committed = True
            n = len(turn.user_texts)
            words, self.pending_user = self.pending_user[:n], self.pending_user[n:]
            self._record(USER, " ".join(words), start=self._pending_user_time, entry_id=self._user_entry_id())
            self._user_group += 1

    def _apply_actions(self, turn: AgentTurn) -> None:
        for action in turn.actions:
            if action.type == llm_pb2.ADVANCE_PHASE:
                target = action.target_phase_id or self._next_phase_id()
                if target:
                    self.spawn(self._api_call(self.api.set_phase(
                        interviews_pb2.SetPhaseRequest(interview_id=self.iid, phase_id=target), reason="llm")),
                        "advance-phase")
            elif action.type == llm_pb2.END_INTERVIEW:
                self._ending_after_turn = True
                self.spawn(self._api_call(self.api.end(
                    interviews_pb2.EndInterviewRequest(interview_id=self.iid, reason="completed"))), "end")

    async def _api_call(self, aw: Any) -> None:
        """State changes go through the API code and come back on the control stream (one path)."""
        try:
            await aw
        except Exception as exc:  # e.g. ended meanwhile: nothing to do
            log.warning("state change refused", extra={"error": str(exc)[:200]})

    def _next_phase_id(self) -> str:
        ids = [p.id for p in self.interview.plan.phases]
        i = ids.index(self.interview.phase_id) if self.interview.phase_id in ids else -1
        return ids[i + 1] if 0 <= i < len(ids) - 1 else ""

    def _check_in(self) -> None:
        if self.turn is None and not self.user_speaking and not self.stopped:
            self.check_ins += 1
            self._start_turn(llm_pb2.TASK_CHECK_IN)

    # ---- barge-in callbacks ----

    def _playback(self, action: int, gid: str) -> None:
        control = session_pb2.PlaybackControl(action=action, generation_id=gid)
        if self.turn is not None:
            control.trace.CopyFrom(self.turn.trace)
        self.outbound.control(session_pb2.ServerMessage(playback=control))

    def _pause(self, gid: str) -> None:
        if self.turn is not None:
            self.turn.pause()
        self._playback(session_pb2.PLAYBACK_PAUSE, gid)

    def _resume(self, gid: str) -> None:
        self._resumed = True
        if self.turn is not None:
            self.turn.resume()
        self._playback(session_pb2.PLAYBACK_RESUME, gid)

    def _commit_barge_in(self, gid: str) -> None:
        turn = self.turn
        self.outbound.clear(gid)
        self._playback(session_pb2.PLAYBACK_CLEAR, gid)
        if turn is None or turn.generation_id != gid:
            return
        turn.cancel_calls()
        if self._turn_task is not None:
            self._turn_task.cancel()
        self.turn = None
        self.timer.agent_speaking(False)
        heard = turn.heard_text()
        if heard:  # the candidate heard part of the reply: their earlier words were answered
            self._commit_user_turn(turn)
            self._record(AGENT, heard, interrupted=True, entry_id=self._agent_entry_id(turn))
        self._send_state()
        if turn.sent_any_audio and turn.task in ANSWERS:
            self._publish_metrics(turn, interrupted=True, once=False)

    # ---- modes, phases, control stream ----

    def apply_mode(self, mode: int, reason: str, note: bool = True) -> None:
        """The one code path of a mode change: VAD params on the live stream, the LLM's system
        note, the check-in timer, the state down to media."""
        self.interview.mode = mode
        self.vad.send(vad_pb2.DetectRequest(params=self._vad_params()))
        if note:
            self.history.add(self._chat(SYSTEM, modes.NOTES.get(mode, "")))
        self.timer.set_mode(mode == modes.CODING, modes.check_in_timeout_s(self.interview.config, self.s.check_in_s))
        self._send_state()
        log.info("mode applied", extra={"mode": common_pb2.Mode.Name(mode), "reason": reason})

    async def _control_loop(self) -> None:
        cursor = self._control_cursor
        while True:
            try:
                items = await self.store.read_control(self.iid, cursor, block_ms=1000)
            except TRANSIENT as exc:
                log.warning("control stream unreachable; retrying", extra={"error": str(exc)[:200]})
                await asyncio.sleep(0.5)
                continue
            for cid, event in items:
                self.apply_event(event)
                cursor = cid
            if items:
                try:
                    await self.store.ack_control(self.iid, self.epoch, cursor)
                except Fenced:
                    self.stop("replaced")
                    return

    def apply_event(self, event: interviews_pb2.Event) -> None:
        kind = event.WhichOneof("payload")
        if kind == "mode_changed":
            self.apply_mode(event.mode_changed.to_mode, event.mode_changed.reason)
        elif kind == "config_changed":
            self.interview.config.CopyFrom(event.config_changed.config)
            self.vad.send(vad_pb2.DetectRequest(params=self._vad_params()))
            self.timer.set_mode(self.interview.mode == modes.CODING,
                                modes.check_in_timeout_s(self.interview.config, self.s.check_in_s))
        elif kind == "phase_changed":
            self.interview.phase_id = event.phase_changed.to_phase_id
            self._phase_started = self.clock.monotonic()
            phase = next((p for p in self.interview.plan.phases if p.id == self.interview.phase_id), None)
            self.history.add(self._chat(SYSTEM, f"Phase: {phase.title if phase else self.interview.phase_id}."))
            self._send_state()
        elif kind == "code_event":
            self._code = common_pb2.CodeSnapshot()
            self._code.CopyFrom(event.code_event.code)
        elif kind == "lifecycle" and event.lifecycle.kind == interviews_pb2.Lifecycle.ENDED:
            self.interview.status = session_pb2.INTERVIEW_ENDED
            self.stop(event.lifecycle.reason or "ended")

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.s.lease_ttl_ms / 3000)
            try:
                if not await self.store.renew_lease(self.iid, self.owner, self.epoch, self.s.lease_ttl_ms):
                    self.stop("replaced")
                    return
            except TRANSIENT as exc:
                log.warning("lease renewal failed; retrying", extra={"error": str(exc)[:200]})

    # ---- records ----

    def _chat(self, role: int, text: str, interrupted: bool = False) -> llm_pb2.ChatMessage:
        return llm_pb2.ChatMessage(role=role, text=text, interrupted=interrupted, time=timestamp(self.clock.time()),
                                   mode=self.interview.mode, phase_id=self.interview.phase_id)

    def _entry(self, role: int, text: str, *, start: float | None = None, interrupted: bool = False,
               incomplete: bool = False, entry_id: str = "", ended: bool = True) -> interviews_pb2.TranscriptEntry:
        if not entry_id:
            self._entry_seq += 1
            entry_id = f"{self.session_id}-e{self._entry_seq}"
        now = self.clock.time()
        entry = interviews_pb2.TranscriptEntry(
            interview_id=self.iid, session_id=self.session_id, role=role, text=text,
            start_time=timestamp(start or now), mode=self.interview.mode,
            phase_id=self.interview.phase_id, interrupted=interrupted, incomplete=incomplete,
            entry_id=entry_id)
        if ended:
            entry.end_time.CopyFrom(timestamp(now))
        return entry

    def _record(self, role: int, text: str, *, start: float | None = None, interrupted: bool = False,
                entry_id: str = "") -> None:
        """History + a durable transcript entry (through the outbox, covered by the in-flight
        marker until it is stored)."""
        self.history.add(self._chat(role, text, interrupted))
        if role == AGENT:
            self._asked |= asked_in(self.interview.plan, [text])
        entry = self._entry(role, text, start=start, interrupted=interrupted, entry_id=entry_id)
        self._unwritten[entry.entry_id] = entry
        self.inflight.kick()
        task = self.spawn(self._write_entry(entry), "transcript")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        if self.history.over_limit():
            self.spawn(self.history.compact(self._summarize), "summarize")

    async def _write_entry(self, entry: interviews_pb2.TranscriptEntry) -> None:
        stored = await self.outbox.put(entry)
        stored.add_done_callback(lambda f: self._entry_stored(entry.entry_id, f))

    def _entry_stored(self, entry_id: str, f: asyncio.Future[Any]) -> None:
        """Refused (fenced) entries stay in the marker: the next owner writes them."""
        if not f.cancelled() and f.exception() is None:
            self._unwritten.pop(entry_id, None)
            self.inflight.kick()

    async def _summarize(self, messages: list[llm_pb2.ChatMessage], previous: str) -> str:
        req = self._request(llm_pb2.TASK_SUMMARIZE, f"{self.session_id}-sum")
        req.context.summary = previous
        del req.history[:]
        req.history.extend(messages)
        text = ""
        async for resp in self.stubs.llm.Generate(req, timeout=10):
            if resp.WhichOneof("msg") == "final":
                text = resp.final.text
        return text

    def _publish_metrics(self, turn: AgentTurn, interrupted: bool = False, once: bool = True) -> None:
        if turn.task not in ANSWERS or turn.times.vad_stop is None:
            return
        m = turn_metrics(turn, interrupted)
        if once:
            self.metrics.append(m)
        self.spawn(self._quietly(self.store.append_event(self.store.event(self.iid, turn_metrics=m),
                                                         epoch=self.epoch)), "metrics")

    def _send_state(self) -> None:
        phase = next((p for p in self.interview.plan.phases if p.id == self.interview.phase_id), None)
        self.outbound.control(session_pb2.ServerMessage(state=session_pb2.SessionState(
            phase_id=self.interview.phase_id, phase_title=phase.title if phase else "", mode=self.interview.mode,
            agent_speaking=self.turn is not None, status=self.interview.status)))


def new_session_id() -> str:
    return "s_" + secrets.token_hex(6)
