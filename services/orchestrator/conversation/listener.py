"""The candidate's side of the audio path: media audio → VAD, and STT gated by VAD.

Audio goes to VAD as it arrives and into a pre-roll ring; on SPEECH_STARTED the gate opens (the
pre-roll first, never audio STT already has, then live audio) until SPEECH_STOPPED, which sends a
FINALIZE with a new id. The listener decides nothing about turns: it reports what it heard as
typed events (heard.py: SpeechStarted, EarlySpeech, SpeechStopped, TurnPaused, Interim, Final…) to its `ListenerHooks`
and never calls up. Both streams reopen by themselves (clients.ReopeningStream); what a new
stream needs (config, params, the audio of utterances not yet answered, FINALIZEs) is re-sent.

FINALIZEs outstanding on the STT stream are bounded (finalizes.py): when STT falls behind, new
ones are held back and coalesce.

VAD decisions are the VAD's own: the thresholds used to spot early speech (stage one of a
barge-in, before SPEECH_STARTED's min speech) are the params the VAD reports in `params_applied`,
and windows are measured from its probability stream at the stream's sample rate; until the VAD
has said which params it applied, only its events count.
"""
from __future__ import annotations

import logging
from typing import Any

import grpc

from interview.v1 import common_pb2, stt_pb2, vad_pb2
from services.common import errors, telemetry
from services.common.audio import PreRoll, check_chunk
from services.common.clock import Clock
from services.orchestrator.conversation.clients import ReopeningStream
from services.orchestrator.conversation.finalizes import Finalizes
from services.orchestrator.conversation.pause_finalize import PauseFinalize
from services.orchestrator.conversation.heard import (EarlySpeech, Final, Interim, ListenerHooks, SpeechResumed,
                                                      SpeechStarted, SpeechStopped, TurnPaused, TurnScoringUnavailable)

log = logging.getLogger("conversation.listener")

VOICED_RECENTLY_S = 0.25  # "still speaking" when a voiced window ended this recently
STT_REPLAY_MS = 10_000  # held audio (beyond the pre-roll): what a reopened STT stream is re-sent


class SessionFailed(errors.InvalidArgument):
    """Bad input from media: ends the stream with its status and a message for a person."""


class Listener:
    def __init__(self, *, vad_stub: Any, stt_stub: Any, hooks: ListenerHooks, clock: Clock, input_rate: int,
                 stream_id: str, stt_provider: str, language: str, pre_roll_ms: int, early_pause_ms: int,
                 params: common_pb2.VadParams, trace_attributes: dict[str, str], finalize_at_pause_ms: int = 0):
        self.hooks, self.clock, self.rate = hooks, clock, input_rate
        self.stream_id, self.stt_provider, self.language = stream_id, stt_provider, language
        self.pre_roll = int(pre_roll_ms * input_rate / 1000)
        self.early_pause_ms = early_pause_ms
        self.pause_finalize = PauseFinalize(int(finalize_at_pause_ms * input_rate / 1000))
        self.trace_attributes = trace_attributes
        self.preroll = PreRoll(int((pre_roll_ms + STT_REPLAY_MS) * input_rate / 1000))
        self.params = params          # what we ask the VAD for
        self.applied: common_pb2.VadParams | None = None  # what it says it applies
        self.speaking = False
        self.utterance_no = 0
        self.utterance_start_time = 0.0
        self.latest_interim = ""
        self.finalizes = Finalizes()
        self._finalize_seq = 0
        self._gate_open = False
        self._audio_end = -1
        self._stt_end = 0  # end of the audio sent on the current STT stream
        self._speech_start = 0
        self._last_scored = -1  # end of the newest window VAD scored
        self._window = 0  # VAD window length, measured from its probability stream
        self._last_voiced = -1  # end of the last window VAD scored as speech
        self._voiced_from = 0  # start of the current run of voiced windows
        self._paused_from: int | None = None  # start of the scored pause (speech may resume after it)
        self._stopped: tuple[str, common_pb2.TraceContext, int] | None = None  # FINALIZE id, trace, last voiced
        self.turn_scoring_refused = False  # the VAD has no end-of-turn model: never ask again
        self.vad = ReopeningStream[vad_pb2.DetectRequest, vad_pb2.DetectResponse](
            "vad", lambda reqs: vad_stub.Detect(reqs), self._vad_first, self._on_vad, self._on_vad_reopen)
        self.stt = ReopeningStream[stt_pb2.RecognizeRequest, stt_pb2.RecognizeResponse](
            "stt", lambda reqs: stt_stub.Recognize(reqs), self._stt_first, self._on_stt, self._on_stt_reopen)

    def set_params(self, params: common_pb2.VadParams) -> None:
        """New VAD params on the live stream (a mode or config change); no stream restarts."""
        self.params = self._askable(params)
        self.vad.send(vad_pb2.DetectRequest(params=self.params))

    def _askable(self, params: common_pb2.VadParams) -> common_pb2.VadParams:
        """Without the model, an update asking for turn scoring would be refused whole."""
        if self.turn_scoring_refused and params.turn_scoring:
            copy = common_pb2.VadParams()
            copy.CopyFrom(params)
            copy.turn_scoring = False
            return copy
        return params

    # ---- audio in ----

    def audio(self, chunk: common_pb2.AudioChunk) -> None:
        try:
            samples = check_chunk(chunk.pcm, chunk.offset_samples, self._audio_end)
        except errors.InvalidArgument as exc:  # bad input from media ends the session with this status
            raise SessionFailed(exc.message, field=exc.field) from None
        self._audio_end = chunk.offset_samples + len(samples)
        self.preroll.push(samples, chunk.offset_samples)
        self.vad.send_audio(vad_pb2.DetectRequest(audio=chunk))
        if self._gate_open:
            self._to_stt(chunk)

    def voiced_recently(self) -> bool:
        """Was the latest audio speech? (decides a barge-in against a cough; the window not yet
        scored counts as voiced)"""
        return self._audio_end - self._last_voiced <= int(VOICED_RECENTLY_S * self.rate) + self._window

    def in_progress(self) -> tuple[str, float, int] | None:
        """The utterance being spoken, as (latest interim text, start time, number), if it has words."""
        if self.speaking and self.latest_interim:
            return self.latest_interim, self.utterance_start_time, self.utterance_no
        return None

    # ---- VAD ----

    def _vad_first(self) -> list[vad_pb2.DetectRequest]:
        """Config, then the same params as an update: the VAD answers it with `params_applied`."""
        self.applied = None
        return [vad_pb2.DetectRequest(config=vad_pb2.VadConfig(
            sample_rate_hz=self.rate, params=self.params, stream_id=self.stream_id, emit_probabilities=True)),
            vad_pb2.DetectRequest(params=self.params)]

    async def _on_vad_reopen(self) -> None:
        if self.speaking:  # the stop of this utterance died with the old stream
            self._speech_stopped()

    async def _on_vad(self, resp: vad_pb2.DetectResponse) -> None:
        kind = resp.WhichOneof("msg")
        if kind == "event":
            if resp.event.type == vad_pb2.SPEECH_STARTED:
                self._speech_started(resp.event.offset_samples)
            elif resp.event.type == vad_pb2.SPEECH_STOPPED:
                self._speech_stopped()
        elif kind == "probability":
            self._scored(resp.probability)
        elif kind == "turn":
            self._turn_scored(resp.turn)
        elif kind == "params_applied":
            self.applied = resp.params_applied.params
        elif kind == "problem":
            if resp.problem.field == "turn_scoring" and resp.problem.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]:
                self._turn_scoring_refused(resp.problem.message)
            else:
                log.warning("VAD refused params", extra={"problem": resp.problem.message})

    def _turn_scoring_refused(self, reason: str) -> None:
        """No end-of-turn model in the VAD: silence alone decides from now on (said once); the
        params go again without turn scoring (the refused update carried the others too)."""
        if self.turn_scoring_refused:
            return
        self.turn_scoring_refused = True
        log.warning("VAD has no end-of-turn model: turn-taking falls back to silence only",
                    extra={"problem": reason})
        self.set_params(self.params)
        self.hooks.heard(TurnScoringUnavailable(reason))

    def _turn_scored(self, t: vad_pb2.TurnScore) -> None:
        """FINALIZE the utterance so far and report the pause; the STT gate stays open, so if the
        candidate goes on, their next words are the next piece of the same turn."""
        if not self.speaking:
            self._late_score(t)
            return
        self._paused_from = t.pause_start_samples
        fid, context, span = self.pause_finalize.take(t.pause_start_samples) or self._finalize()
        self.latest_interim = ""  # the words so far are the FINALIZE's now
        self.hooks.heard(TurnPaused(t.probability, t.pause_ms, self.clock.monotonic(), fid, context, span))

    def _late_score(self, t: vad_pb2.TurnScore) -> None:
        """The score of the pause that ended the utterance came after SPEECH_STOPPED (a loaded
        VAD): still worth deciding on (end_of_turn waits for it), with the stop's FINALIZE."""
        stopped, self._stopped = self._stopped, None
        if stopped is not None and t.pause_start_samples >= stopped[2] - self._window:
            fid, context, _ = stopped
            self.hooks.heard(TurnPaused(t.probability, t.pause_ms, self.clock.monotonic(), fid, context, None, True))

    def _scored(self, p: vad_pb2.VadProbability) -> None:
        end = p.window_end_samples
        previous, self._last_scored = self._last_scored, end
        if previous >= 0 and end > previous:
            self._window = end - previous
        a = self.applied
        if a is None or not a.HasField("activation_threshold"):
            return
        if (self.speaking and a.turn_scoring and not self.turn_scoring_refused
                and self.pause_finalize.window(end - self._window, end, p.probability, a)):
            self.pause_finalize.sent(self._finalize())  # the pause's FINALIZE, before its turn score
            self.latest_interim = ""
        if p.probability < a.activation_threshold:
            return
        if self._last_voiced < 0 or self._last_voiced < previous:  # the window before was not voiced
            self._voiced_from = previous if previous >= 0 else end
        self._last_voiced = end
        run_ms = (end - self._voiced_from) * 1000 / self.rate
        if (self._paused_from is not None and self.speaking and self._voiced_from >= self._paused_from
                and run_ms >= self.early_pause_ms):
            self._paused_from = None
            self.hooks.heard(SpeechResumed())
        # Stage one of a barge-in (PAUSE) needs no SPEECH_STARTED: it is reversible, so it may come
        # after `early_pause_ms` of voiced windows rather than after the VAD's min speech.
        if (end - self._voiced_from) * 1000 / self.rate >= self.early_pause_ms and a.HasField("min_speech_ms"):
            self.hooks.heard(EarlySpeech(in_utterance=self.speaking,
                                         confirm_within_s=a.min_speech_ms / 1000 + VOICED_RECENTLY_S))

    def _speech_started(self, offset: int) -> None:
        if self.speaking:
            return
        self.speaking = True
        self.pause_finalize.reset()
        self._paused_from = self._stopped = None
        self.utterance_no += 1
        self.latest_interim = ""
        self._speech_start = offset
        self.finalizes.utterance_started(max(0, offset - self.pre_roll))
        self.utterance_start_time = self.clock.time()
        self._open_gate()
        self.hooks.heard(SpeechStarted(offset))

    def _open_gate(self) -> None:  # pre-roll first, then live audio
        self._send_held(self._speech_start - self.pre_roll)
        self._gate_open = True

    def _send_held(self, offset: int) -> None:
        """Held audio from `offset` on (never audio STT already has: its offsets must not go back)."""
        start, samples = self.preroll.since(max(offset, self._stt_end))
        if len(samples):
            self._to_stt(common_pb2.AudioChunk(pcm=samples.tobytes(), offset_samples=start))

    def _to_stt(self, chunk: common_pb2.AudioChunk) -> None:
        if self.stt.send_audio(stt_pb2.RecognizeRequest(audio=chunk)):
            self._stt_end = chunk.offset_samples + len(chunk.pcm) // 2

    def _speech_stopped(self) -> None:
        if not self.speaking:
            return
        self.speaking = False
        self.pause_finalize.reset()
        self._paused_from = None
        self._gate_open = False
        stopped_at = self.clock.monotonic()
        fid, context, span = self._finalize()
        self._stopped = (fid, context, self._last_voiced)
        self.hooks.heard(SpeechStopped(stopped_at, context, span))

    def _finalize(self) -> tuple[str, common_pb2.TraceContext, Any]:
        """A FINALIZE with a new id, carrying a new turn trace: its 'turn' span is started here and
        left open (whoever answers the turn ends it at first audio; the floor ends the others)."""
        span = telemetry.start_turn("turn", **self.trace_attributes)
        context = common_pb2.TraceContext()
        telemetry.inject_span(span, context)
        self._finalize_seq += 1
        fid = f"{self.stream_id}-f{self._finalize_seq}"
        if self.finalizes.new(fid, context, self._audio_end):
            self._send_finalize(fid)
        return fid, context, span

    @property
    def finalizing(self) -> list[str]:
        """FINALIZE ids not yet answered, in order: those sent, then the one held back."""
        return self.finalizes.pending

    def _send_finalize(self, fid: str) -> None:
        self.stt.send(stt_pb2.RecognizeRequest(finalize=stt_pb2.Finalize(
            finalize_id=fid, trace=self.finalizes.traces.get(fid))))

    # ---- STT ----

    def _stt_first(self) -> list[stt_pb2.RecognizeRequest]:
        return [stt_pb2.RecognizeRequest(config=stt_pb2.SttConfig(
            provider=self.stt_provider, language=self.language, sample_rate_hz=self.rate, interim_results=True,
            stream_id=self.stream_id, finalize_deadline_ms=self.finalizes.deadline_ms(self._audio_end, self.rate)))]

    async def _on_stt_reopen(self) -> None:
        """Re-send what the new stream needs: the audio of every utterance not answered yet (also
        one said while STT was down, up to STT_REPLAY_MS), the one in progress, the FINALIZEs."""
        self._stt_end = 0
        if (start := self.finalizes.replay_from()) is not None:
            self._send_held(start)
        if self.speaking:
            self._open_gate()
        for fid in self.finalizes.sent:
            self._send_finalize(fid)

    async def _on_stt(self, resp: stt_pb2.RecognizeResponse) -> None:
        if resp.WhichOneof("msg") != "result":
            return
        r = resp.result
        text = r.text.strip()
        if not r.finalize_id:
            if text:
                self.latest_interim = text
                self.hooks.heard(Interim(text, r.is_final))
            return
        covers, release = self.finalizes.answered(r.finalize_id, speaking=self.speaking)
        if release is not None:
            self._send_finalize(release)
        self.hooks.heard(Final(text, r.finalize_id, r.confidence, len(r.words) or len(text.split()), covers))
