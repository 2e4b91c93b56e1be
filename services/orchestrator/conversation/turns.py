"""One agent generation: LLM deltas streamed into TTS, TTS audio streamed down to media.

The agent's turn starts when the LLM call starts (not when audio starts), so the barge-in logic
sees it from that moment. TTS is opened on the first delta (a NO_REPLY never opens it), or at once
for a prelude (a coaching note, said before the LLM's words), and speaks while the LLM still
writes. After the last chunk is sent the turn stays on until media has played it: a
`PlaybackMark{finished}` ends it, or, without marks, the audio's duration plus a margin counted
from the first chunk sent (pauses extend it).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interview.v1 import common_pb2, llm_pb2, session_pb2, tts_pb2
from services.common import telemetry
from services.common.clock import Clock, Timer
from services.orchestrator.conversation.clients import TtsCall
from services.orchestrator.conversation.outbound import Outbound
from services.orchestrator.conversation.playback import GenerationLog

log = logging.getLogger("conversation.turns")


@dataclass
class TurnTimes:
    """Monotonic clock readings of one turn's milestones (None = not reached)."""

    vad_stop: float | None = None       # SPEECH_STOPPED received, or the scored pause the turn committed at
    speech_end: float | None = None     # end of the candidate's speech (estimate: decision time - pause)
    committed: float | None = None      # end_of_turn committed the candidate's turn
    stt_final: float | None = None
    llm_start: float | None = None
    llm_first_token: float | None = None
    tts_first_audio: float | None = None
    first_audio_sent: float | None = None


@dataclass
class AgentTurn:
    generation_id: str
    task: int
    request: llm_pb2.GenerateRequest
    sample_rate: int
    clock: Clock
    outbound: Outbound
    trace: common_pb2.TraceContext = field(default_factory=common_pb2.TraceContext)
    times: TurnTimes = field(default_factory=TurnTimes)
    user_texts: list[str] = field(default_factory=list)  # the candidate's words this turn answers
    margin_s: float = 0.3
    on_first_audio: Callable[["AgentTurn"], None] | None = None
    turn_span: Any = None  # the candidate's turn (opened at the end-of-speech decision): ends at first audio
    speculative: bool = False  # prepared before the turn was committed (preemptive reply)
    held: bool = False  # speculative: generate now, send no audio until `release` (the turn committed)
    prelude: str = ""  # spoken before the LLM's words (a coaching note, coaching.py)
    coaching: Any = None  # coaching.py's decision on the answer this turn replies to
    user_write: Any = None  # the write of the candidate entry this turn answers (Transcript.record)

    def __post_init__(self) -> None:
        self.log = GenerationLog(self.generation_id)
        self.final: llm_pb2.GenerateFinal | None = None
        self.tts_done: tts_pb2.SynthesisDone | None = None
        self.llm_provider = ""
        self.played = asyncio.Event()
        self.samples_played: int | None = None  # from media's marks
        self.first_sent_at: float | None = None
        self.paused_at: float | None = None
        self._play_timer: Timer | None = None
        self._tts: TtsCall | None = None
        self._llm_call: Any = None
        self.user_committed = False
        # What the LLM, TTS and media see: this generation's span, under the turn's trace.
        self.stage_trace = common_pb2.TraceContext()
        self.release = asyncio.Event()
        if not self.held:
            self.release.set()
        self.spec_counts = (0, 0, 0)  # the candidate turn's speculative starts, cancellations, wasted tokens
        self.text_chars = 0  # of the deltas received (a token estimate when no usage came)

    @property
    def sent_any_audio(self) -> bool:
        return self.first_sent_at is not None

    @property
    def actions(self) -> list[llm_pb2.Action]:
        return list(self.final.actions) if self.final is not None else []

    @property
    def task_name(self) -> str:
        return llm_pb2.Task.Name(self.task) if self.task in llm_pb2.Task.values() else str(self.task)

    def has_action(self, action: int) -> bool:
        return any(a.type == action for a in self.actions)

    async def run(self, llm_stub: Any, tts_stub: Any, tts_config: tts_pb2.TtsConfig) -> None:
        """Generate and send; returns when media has played the whole generation."""
        with telemetry.child_span(self.trace, "agent.generate", generation_id=self.generation_id,
                                  task=self.task_name,
                                  speculative=self.speculative or self.held) as span:
            telemetry.inject_span(span, self.stage_trace)
            self.request.trace.CopyFrom(self.stage_trace)
            try:
                async with asyncio.TaskGroup() as tg:
                    await self._generate(llm_stub, tts_stub, tts_config, tg)
                await self.release.wait()  # a speculative NO_REPLY still ends only once its turn commits
            finally:
                if self._tts is not None:
                    self._tts.cancel()  # done by now, or failed: no request reader is left waiting
                self._end_turn_span("no audio" if self.first_sent_at is None else "answered")
        if self.sent_any_audio:
            self._arm_playback_estimate()
            await self.played.wait()
        else:  # why the interviewer stayed silent (a NO_REPLY, or text that made no audio)
            log.info("agent turn said nothing", extra={
                "generation_id": self.generation_id, "task": self.task_name,
                "actions": ",".join(f"{llm_pb2.ActionType.Name(a.type)}: {a.reason}" for a in self.actions),
                "text_chars": self.text_chars, "tts_done": self.tts_done is not None})
        self._cancel_timer()

    async def _generate(self, llm_stub: Any, tts_stub: Any, tts_config: tts_pb2.TtsConfig,
                        tg: asyncio.TaskGroup) -> None:
        self.times.llm_start = self.clock.monotonic()
        self._llm_call = llm_stub.Generate(self.request, timeout=60)
        if self.prelude:  # said first, while the LLM starts on the rest
            await self._open_tts(tts_stub, tts_config, tg).text(self.prelude + " ", self.stage_trace)
        async for resp in self._llm_call:
            kind = resp.WhichOneof("msg")
            if kind == "delta" and resp.delta.text:
                if self.times.llm_first_token is None:
                    self.times.llm_first_token = self.clock.monotonic()
                self.text_chars += len(resp.delta.text)
                await self._open_tts(tts_stub, tts_config, tg).text(resp.delta.text, self.stage_trace)
            elif kind == "final":
                self.final = resp.final
                self.llm_provider = resp.final.provider
        if self._tts is not None:
            await self._tts.end()

    def _open_tts(self, tts_stub: Any, tts_config: tts_pb2.TtsConfig, tg: asyncio.TaskGroup) -> TtsCall:
        """The turn's one Tts.Synthesize call, opened on the first text to speak."""
        if self._tts is None:
            cfg = tts_pb2.TtsConfig()
            cfg.CopyFrom(tts_config)
            cfg.generation_id = self.generation_id
            self._tts = TtsCall(tts_stub, cfg, tts_pb2.SynthesizeRequest)
            tg.create_task(self._send_audio(self._tts))
        return self._tts

    async def _send_audio(self, tts: TtsCall) -> None:
        async for resp in tts.call:
            kind = resp.WhichOneof("msg")
            if kind == "audio":
                chunk = resp.audio
                if self.times.tts_first_audio is None:
                    self.times.tts_first_audio = self.clock.monotonic()
                await self.release.wait()  # held audio waits here (TTS flow control holds the rest)
                msg = session_pb2.ServerMessage(audio=session_pb2.AgentAudio(
                    generation_id=self.generation_id, sample_rate_hz=chunk.sample_rate_hz, text=chunk.text,
                    chunk=common_pb2.AudioChunk(pcm=chunk.pcm, offset_samples=chunk.offset_samples, trace=self.stage_trace)))
                if not await self.outbound.audio(msg):
                    return  # cleared: the turn is being cancelled
                self.log.add_chunk(chunk.offset_samples, len(chunk.pcm) // 2, chunk.text)
                if self.first_sent_at is None:
                    self.first_sent_at = self.times.first_audio_sent = self.clock.monotonic()
                    self._end_turn_span("answered")
                    if self.on_first_audio is not None:
                        self.on_first_audio(self)
            elif kind == "done":
                self.tts_done = resp.done
        if self.sent_any_audio:
            await self.outbound.audio(session_pb2.ServerMessage(audio=session_pb2.AgentAudio(
                generation_id=self.generation_id, sample_rate_hz=self.sample_rate, last=True,
                chunk=common_pb2.AudioChunk(offset_samples=self.log.total_samples))))

    def _end_turn_span(self, outcome: str) -> None:
        if self.turn_span is not None:
            self.turn_span.set_attribute("turn.outcome", outcome)
            self.turn_span.set_attribute("generation_id", self.generation_id)
            self.turn_span.end()
            self.turn_span = None

    def output_tokens(self) -> int:
        """The LLM's output tokens so far: its usage when the answer finished, else ~4 chars a token."""
        if self.final is not None and self.final.usage.output_tokens:
            return self.final.usage.output_tokens
        return (self.text_chars + 3) // 4

    def cancel_calls(self) -> None:
        """Barge-in: stop generation and synthesis now (their tasks end with CancelledError)."""
        if self._llm_call is not None:
            self._llm_call.cancel()
        if self._tts is not None:
            self._tts.cancel()
        self._cancel_timer()

    # ---- playback tracking ----

    def mark(self, mark: session_pb2.PlaybackMark) -> None:
        self.samples_played = max(self.samples_played or 0, mark.samples_played)
        if mark.finished:
            self.played.set()

    def pause(self) -> None:
        if self.paused_at is None:
            self.paused_at = self.clock.monotonic()
            self._cancel_timer()

    def resume(self) -> None:
        if self.paused_at is not None:
            if self.first_sent_at is not None:  # playback was held: the estimate moves on by that long
                self.first_sent_at += self.clock.monotonic() - self.paused_at
            self.paused_at = None
            if self.tts_done is not None or self._play_timer is not None:
                self._arm_playback_estimate()

    def heard_samples(self) -> int:
        """What media played: its marks, else the time since the first chunk (up to a pause)."""
        if self.samples_played is not None:
            return self.samples_played
        if self.first_sent_at is None:
            return 0
        until = self.paused_at if self.paused_at is not None else self.clock.monotonic()
        return min(self.log.total_samples, int((until - self.first_sent_at) * self.sample_rate))

    def heard_text(self) -> str:
        return self.log.heard_text(self.heard_samples())

    def _arm_playback_estimate(self) -> None:
        self._cancel_timer()
        if self.played.is_set() or self.paused_at is not None or self.first_sent_at is None:
            return
        end = self.first_sent_at + self.log.total_samples / self.sample_rate + self.margin_s
        self._play_timer = self.clock.call_later(max(0.0, end - self.clock.monotonic()), self.played.set)

    def _cancel_timer(self) -> None:
        if self._play_timer is not None:
            self._play_timer.cancel()
            self._play_timer = None


def agent_entry_id(turn: AgentTurn) -> str:
    """The transcript entry id of what the candidate heard of a turn (idempotent across retries)."""
    return f"{turn.generation_id}-a"


class OpenTurnSpan:
    """The candidate turn's open 'turn' span, from its decision point (a scored pause or the end of
    speech) until a reply takes it (and ends it at first audio); a newer decision point replaces it
    when the candidate went on."""

    def __init__(self) -> None:
        self.span: Any = None

    def hand_over(self, span: Any) -> None:
        self.end("continued")  # the earlier pause started no turn
        self.span = span

    def take(self) -> Any:
        span, self.span = self.span, None
        return span

    def end(self, outcome: str) -> None:
        if self.span is not None:
            self.span.set_attribute("turn.outcome", outcome)
            self.span.end()
            self.span = None
