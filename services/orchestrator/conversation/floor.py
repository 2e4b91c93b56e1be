"""Who has the floor: the agent's turns, the candidate's barge-ins, check-ins and the LLM's actions.

The agent's turn starts when its LLM call starts (barge_in.py sees it from that moment) and ends
when media has played it. The candidate's words wait (`Transcript.pending_user`) until they are
quiet, every FINALIZE is answered and no agent turn is on; then one turn answers them all. A
committed barge-in clears the generation's audio, cancels its LLM and TTS calls and records only
what was heard, marked interrupted. Per-turn latency (TurnMetrics) is published on first audio.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import grpc

from interview.v1 import common_pb2, interviews_pb2, llm_pb2, session_pb2, tts_pb2
from services.common.clock import Clock
from services.orchestrator.conversation import modes
from services.orchestrator.conversation.actions import apply_actions
from services.orchestrator.conversation.barge_in import BargeIn, Stage
from services.orchestrator.conversation.coaching import Coach
from services.orchestrator.conversation.end_of_turn import EndOfTurn, policy_config
from services.orchestrator.conversation.heard import EarlySpeech, Final, Interim, SpeechStopped, TurnPaused
from services.orchestrator.conversation.interruption import Interruption
from services.orchestrator.conversation.interview_view import InterviewView
from services.orchestrator.conversation.listener import Listener
from services.orchestrator.conversation.llm_request import ANSWERS, LlmRequests
from services.orchestrator.conversation.metrics import observe as observe_metrics, turn_metrics
from services.orchestrator.conversation.outbound import Outbound
from services.orchestrator.conversation.preemptive import PreemptiveReply
from services.orchestrator.conversation.settings import LoopSettings, Stubs
from services.orchestrator.conversation.silence_timer import SilenceTimer
from services.orchestrator.conversation.transcript import AGENT, USER, InFlight, Spawn, Transcript
from services.orchestrator.conversation.turns import AgentTurn, OpenTurnSpan, TurnTimes, agent_entry_id

log = logging.getLogger("conversation.floor")


class Floor:
    def __init__(self, *, session_id: str, view: InterviewView, transcript: Transcript, requests: LlmRequests,
                 listener: Listener, outbound: Outbound, api: Any, stubs: Stubs, settings: LoopSettings, clock: Clock,
                 playback_rate: int, spawn: Spawn, stopped: Callable[[], bool], changed: Callable[[], None],
                 publish: Callable[..., Coroutine[Any, Any, None]]):
        self.session_id, self.view, self.transcript, self.requests = session_id, view, transcript, requests
        self.listener, self.outbound, self.api, self.stubs, self.s = listener, outbound, api, stubs, settings
        self.clock, self.playback_rate = clock, playback_rate
        self._spawn, self.stopped, self._changed, self._publish = spawn, stopped, changed, publish
        self.interruption = Interruption(self)
        self.barge = BargeIn(clock, pause=self.interruption.pause, resume=self.interruption.resume,
                             commit=self.interruption.commit,
                             commit_after_s=settings.barge_in_commit_ms / 1000, still_speaking=listener.voiced_recently)
        self.timer = SilenceTimer(clock, self._check_in, view.check_in_timeout_s())
        self.eot = EndOfTurn(clock, self.maybe_reply)
        self.pre = PreemptiveReply(self)
        self.coach = Coach(view=view, transcript=transcript, clock=clock, spawn=spawn, publish=publish)
        self.turn: AgentTurn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._generation_seq, self._turn_started = 0, 0.0
        self._vad_stop_at: float | None = None
        self.utterance_trace = common_pb2.TraceContext()
        self.turn_span = OpenTurnSpan()
        self.ending_after_turn, self.check_ins = False, 0
        self.metrics: list[interviews_pb2.TurnMetrics] = []

    # ---- what the candidate does ----

    def configure_turns(self) -> None:
        """Semantic end of turn or silence only, and the thresholds, for the current mode and config."""
        config, turns = self.view.interview.config, modes.turn_taking(self.view.interview.config)
        self.eot.configure(modes.turn_taking_on(self.view.mode, config), policy_config(turns), config.language or "en",
                           turns.learn_pauses)
        self.pre.on = turns.preemptive_reply
        if not (self.pre.on and self.eot.on):
            self.pre.drop("turned off")

    def speech_started(self) -> None:
        self.interruption.resumed = False
        self.eot.speech_started(replying=self.turn is not None)
        self.pre.drop("the candidate spoke again")
        self.barge.speech_started()

    def turn_paused(self, e: TurnPaused) -> None:
        if not e.after_stop:  # a late score keeps the stop's timings, trace and span
            self._vad_stop_at, self.utterance_trace = e.at, e.trace
            self.turn_span.hand_over(e.span)
        self.eot.paused(e)
        self.pre.maybe_start()  # its FINALIZE may have been answered already (sent at the pause)

    def speech_resumed(self) -> None:
        """The candidate goes on after a short pause. A reply started for it that nobody has heard
        yet is withdrawn silently (their words stay pending, joined by the next ones); one being
        heard is a barge-in."""
        self.eot.resumed(replying=self.turn is not None)
        self.pre.drop("the candidate went on")
        turn = self.turn
        if turn is None or turn.task not in ANSWERS:
            return
        if not turn.sent_any_audio:
            self._withdraw(turn)
        else:
            self.barge.speech_started()

    def _withdraw(self, turn: AgentTurn) -> None:
        log.info("reply withdrawn: the candidate went on", extra={"generation_id": turn.generation_id})
        self.outbound.clear(turn.generation_id)  # a first chunk queued but not yet counted as sent
        self.stop_turn(turn)
        self.barge.turn_finished()
        self.send_state()

    def early_speech(self, e: EarlySpeech) -> None:
        if self.barge.stage is not Stage.SPEAKING:
            return
        if not e.in_utterance:  # SPEECH_STARTED (after min speech) confirms it
            self.barge.early_pause(confirm_within_s=e.confirm_within_s)
        elif self.interruption.resumed:  # speech again after a false alarm, same VAD utterance
            self.interruption.resumed = False
            self.barge.speech_started()

    def speech_stopped(self, e: SpeechStopped) -> None:
        if self.eot.pause is None:  # a committed or pending scored pause keeps its own timings
            self._vad_stop_at = e.at
            self.utterance_trace = e.trace
            self.turn_span.hand_over(e.span)
        elif e.span is not None:  # the scored pause's turn span stands for this utterance
            e.span.set_attribute("turn.outcome", "pause already scored")
            e.span.end()
        self.barge.speech_stopped()
        applied = self.listener.applied or self.listener.params
        self.eot.speech_stopped(e.at, applied.min_silence_ms)

    def interim(self, e: Interim) -> None:
        self.barge.stt_word()
        if not e.is_final:
            self.outbound.control(session_pb2.ServerMessage(caption=session_pb2.Caption(role=USER, text=e.text)))

    def final(self, e: Final) -> None:
        if e.text:
            self.barge.stt_word()
            self.outbound.control(session_pb2.ServerMessage(caption=session_pb2.Caption(
                role=USER, text=e.text, is_final=True)))
            self.timer.utterance_transcribed()
            self.transcript.add_pending(e.text, self.listener.utterance_start_time, e.confidence, e.words)
        self.eot.finalized(e.finalize_id, self.transcript.pending_text(), e.covers)
        self.maybe_reply()
        self.pre.maybe_start()

    def mark(self, mark: session_pb2.PlaybackMark) -> None:
        turn = self.turn
        if turn is not None and mark.generation_id == turn.generation_id:
            turn.mark(mark)
            self._changed()
            if not turn.user_committed and turn.heard_text():
                self.commit_user_turn(turn)  # the reply is being heard: no merge any more

    def maybe_reply(self) -> None:
        """Answer the pending words once the candidate's turn is over (end_of_turn.py), every
        FINALIZE is answered and the agent is not speaking; words that arrive while the agent
        speaks are answered when its turn ends."""
        if (self.transcript.pending_user and self.eot.committed and not self.listener.finalizing
                and self.turn is None):
            task = llm_pb2.TASK_WRAP_UP if self.view.wrap_up_due() else llm_pb2.TASK_REPLY
            if task == llm_pb2.TASK_REPLY and self.pre.matches(self.transcript.pending_text()):
                self._promote()
                return
            self.pre.drop("the committed words differ from what it was generated from")
            self.start_turn(task)

    def next_generation_id(self) -> str:
        self._generation_seq += 1
        return f"{self.session_id}-g{self._generation_seq}"

    def spawn_turn(self, turn: AgentTurn, name: str) -> "asyncio.Task[None]":
        self.coach.prepare(turn)
        return self._spawn(self._run_turn(turn), name)

    def _promote(self) -> None:
        turn, self._turn_task = self.pre.promote()
        turn.times.vad_stop, turn.times.speech_end = self._vad_stop_at, self.eot.speech_end
        turn.times.committed = self.eot.committed_at
        turn.turn_span = self.turn_span.take()
        self.turn = turn
        self._turn_started = self.clock.time()
        self.eot.taken()
        self.barge.turn_started(turn.generation_id)
        self.timer.agent_speaking(True)
        self.send_state()
        turn.release.set()

    # ---- agent turns ----

    def start_turn(self, task: int) -> None:
        if self.stopped():
            return
        gid = self.next_generation_id()
        request = self.requests.generate(task, gid)
        answers = task in ANSWERS
        turn = AgentTurn(gid, task, request, self.playback_rate, self.clock, self.outbound,
                         margin_s=self.s.playback_margin_ms / 1000,
                         times=TurnTimes(vad_stop=self._vad_stop_at, stt_final=self.clock.monotonic() if answers else None,
                                         speech_end=self.eot.speech_end if answers else None,
                                         committed=self.eot.committed_at if answers else None),
                         user_texts=list(self.transcript.pending_user) if answers else [],
                         on_first_audio=self.publish_metrics)
        if answers:
            turn.trace.CopyFrom(self.utterance_trace)
            turn.turn_span = self.turn_span.take()
            self.eot.taken()
            self.pre.take_counts(turn)
        request.trace.CopyFrom(turn.trace)
        self.turn = turn
        self._turn_started = self.clock.time()
        self.barge.turn_started(gid)
        self.timer.agent_speaking(True)
        self.send_state()
        self._turn_task = self.spawn_turn(turn, f"turn-{gid}")

    async def _run_turn(self, turn: AgentTurn) -> None:
        c = self.view.interview.config  # the language too: TTS starts on a provider that speaks it
        tts_cfg = tts_pb2.TtsConfig(provider=self.s.tts_provider, voice=c.tts_voice, language=c.language, sample_rate_hz=self.playback_rate)
        try:
            await turn.run(self.stubs.llm, self.stubs.tts, tts_cfg)
        except* grpc.aio.AioRpcError as eg:
            exc: Any = eg.exceptions[0]
            log.error("agent turn failed", extra={"code": exc.code().name, "detail": (exc.details() or "")[:200]})
        if self.pre.turn is turn:  # a speculative reply failed before its turn committed: a fresh one then
            self.pre.drop("failed")
            return
        if self.turn is not turn:
            return  # cancelled by a barge-in, which did the bookkeeping
        self._finish_turn(turn)

    def _finish_turn(self, turn: AgentTurn) -> None:
        self.turn = None
        self.barge.turn_finished()
        self.timer.agent_speaking(False)
        self.commit_user_turn(turn)  # also when no reply came (NO_REPLY)
        text = turn.log.text
        if turn.sent_any_audio and text:
            self.transcript.record(AGENT, text, entry_id=agent_entry_id(turn))
            self.outbound.control(session_pb2.ServerMessage(caption=session_pb2.Caption(
                role=AGENT, text=text, is_final=True, generation_id=turn.generation_id)))
        self.coach.done(turn)
        self.send_state()
        if apply_actions(turn.actions, self.view, self.api, self._spawn):
            self.ending_after_turn = True
        if not self.ending_after_turn:
            self.maybe_reply()

    def commit_user_turn(self, turn: AgentTurn) -> None:
        """The candidate's words a turn answers become one transcript entry once the reply's first
        words are heard (playback marks; without marks, when the turn ends) or none is coming, so
        speech resumed during the LLM/TTS latency merges into one entry. Words that arrived later
        stay pending for the next turn."""
        if turn.user_texts and not turn.user_committed:
            turn.user_committed = True
            turn.user_write = self.transcript.commit_user(len(turn.user_texts))

    def _check_in(self) -> None:
        if self.turn is None and not self.listener.speaking and not self.stopped():
            self.check_ins += 1
            self.start_turn(llm_pb2.TASK_CHECK_IN)

    def in_progress(self) -> InFlight | None:
        """The agent turn as heard so far, if any of it was sent."""
        turn = self.turn
        if turn is not None and turn.sent_any_audio:
            return turn.heard_text(), self._turn_started, agent_entry_id(turn)
        return None

    def cut_off(self) -> None:
        """The session ends: no timer, no barge-in; a turn being heard stops (its entry is in flight)."""
        self.turn_span.end("session ended")
        self.timer.cancel()
        self.barge.turn_finished()
        self.pre.drop("the session ends")
        if self.turn is not None and self.turn.sent_any_audio:
            self.turn.cancel_calls()
            self.turn = None

    def send_state(self) -> None:
        self.outbound.control(self.view.state(agent_speaking=self.turn is not None))

    def stop_turn(self, turn: AgentTurn) -> None:
        """The turn ends early (a barge-in, or the candidate went on): its calls stop, the floor is free."""
        turn.cancel_calls()
        if self._turn_task is not None:
            self._turn_task.cancel()
        self.turn = None
        self.timer.agent_speaking(False)

    def publish_metrics(self, turn: AgentTurn, interrupted: bool = False, once: bool = True) -> None:
        if turn.task not in ANSWERS or turn.times.vad_stop is None:
            return
        m = turn_metrics(turn, interrupted)
        observe_metrics(m)
        if once:
            self.metrics.append(m)
        self._spawn(self._publish(turn_metrics=m), "metrics")
