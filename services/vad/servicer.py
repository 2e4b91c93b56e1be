"""Vad.Detect: one bidi stream per caller; config first, then audio and params updates.

Per stream: a Rebuffer (chunks of any size -> exact Silero windows), the stream's model state
(inference goes through the process-wide Batcher), a Detector and a TurnTracker (turn scores go
through the process-wide TurnScorer and are sent as soon as they are ready, between requests).
Errors that make the rest of the stream meaningless (bad config, bad audio) end it with
INVALID_ARGUMENT; a bad params update is answered in-band with a Problem and the stream keeps its
old params; a pause that could not be scored is reported in-band too.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc

from interview.v1 import common_pb2, vad_pb2, vad_pb2_grpc
from services.common import logs, telemetry
from services.common.audio import Rebuffer, Window, check_chunk
from services.common.clock import Clock, RealClock
from services.common.errors import InvalidArgument, settle
from services.vad.batcher import Batcher, InferenceUnavailable
from services.vad.detector import Detector, Event, Kind, Params, ParamsError
from services.vad.idle import IdleTimeout, guard_idle
from services.vad.model import WINDOWS, StreamState
from services.vad.turns import TurnJob, TurnScorer, TurnScoringUnavailable, TurnTracker

log = logging.getLogger("vad.servicer")

PARAM_FIELDS = ("activation_threshold", "deactivation_threshold", "min_speech_ms", "min_silence_ms", "speech_pad_ms",
                "turn_scoring", "turn_pause_ms", "turn_threshold")
_INVALID = grpc.StatusCode.INVALID_ARGUMENT.value[0]
_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION.value[0]
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE.value[0]
_EVENT_TYPES = {Kind.STARTED: vad_pb2.SPEECH_STARTED, Kind.STOPPED: vad_pb2.SPEECH_STOPPED}


class BadRequest(Exception):
    """Ends the stream with INVALID_ARGUMENT; the message is for a person."""


def params_changes(msg: common_pb2.VadParams) -> dict[str, float | int | None]:
    return {name: getattr(msg, name) if msg.HasField(name) else None for name in PARAM_FIELDS}


def params_to_proto(params: Params) -> common_pb2.VadParams:
    return common_pb2.VadParams(**{name: getattr(params, name) for name in PARAM_FIELDS})


class DetectStream:
    """The state of one Detect stream after its config was accepted."""

    def __init__(self, config: vad_pb2.VadConfig, defaults: Params, scorer: TurnScorer):
        rate = config.sample_rate_hz
        if rate not in WINDOWS:
            got = "no sample_rate_hz" if rate == 0 else f"sample_rate_hz={rate}"
            raise BadRequest(f"{got}: the VAD accepts PCM s16le mono at 16000 or 8000 Hz; resample before sending")
        try:
            params = defaults.updated(**params_changes(config.params))
        except ParamsError as exc:
            raise BadRequest(f"config.params: {exc}") from None
        self.rate = rate
        self.emit_probabilities = config.emit_probabilities
        self.model = StreamState(rate)
        self.rebuffer = Rebuffer(WINDOWS[rate][0])
        self.next_offset = 0  # end of the audio received so far
        self.scorer = scorer
        self.turns = TurnTracker(rate)
        # Turn scores in flight, in pause order: (job, trace of the chunk that completed the pause,
        # the turn_threshold in effect when the pause was decided, future)
        # and the 'vad.turn_score' span when that chunk carried a turn's trace)
        self.in_flight: deque[tuple[TurnJob, common_pb2.TraceContext, float, asyncio.Future[float], Any]] = deque()
        self.startup: list[vad_pb2.DetectResponse] = []  # sent right after the config is accepted
        if params.turn_scoring and not scorer.available:
            params = params.updated(turn_scoring=False)
            self.startup.append(self._no_model_problem("config.params.turn_scoring"))
        self.detector = Detector(rate, params)

    def _no_model_problem(self, where: str) -> vad_pb2.DetectResponse:
        return vad_pb2.DetectResponse(problem=common_pb2.Problem(
            code=_PRECONDITION, field="turn_scoring",
            message=f"{where}: turn scoring is unavailable on this VAD instance ({self.scorer.reason}); "
                    "it stays off, speech events go on"))

    def windows(self, chunk: common_pb2.AudioChunk) -> list[Window]:
        samples, offset = check_chunk(chunk.pcm, chunk.offset_samples, self.next_offset), chunk.offset_samples
        self.next_offset = offset + len(samples)
        return self.rebuffer.push(samples, offset)

    def decide(self, window: Window, probability: float, trace: common_pb2.TraceContext) -> list[vad_pb2.DetectResponse]:
        end = window.offset + self.rebuffer.size
        out: list[vad_pb2.DetectResponse] = []
        if self.emit_probabilities:
            out.append(vad_pb2.DetectResponse(probability=vad_pb2.VadProbability(
                window_end_samples=end, probability=probability)))
        out.extend(self._event(ev, trace) for ev in self.detector.process(window.offset, end, probability))
        self.turns.push(window.samples, window.offset)
        job = self.turns.observe(window.offset, end, probability, self.detector.speaking, self.detector.params)
        if job is not None:
            span = telemetry.start_child(trace, "vad.turn_score") if trace.traceparent else None
            self.in_flight.append((job, trace, self.detector.params.turn_threshold, self.scorer.submit(job), span))
        return out

    def turn_results(self) -> list[vad_pb2.DetectResponse]:
        """TurnScores (or Problems) of the pauses scored so far, in pause order."""
        out: list[vad_pb2.DetectResponse] = []
        while self.in_flight and self.in_flight[0][3].done():
            job, trace, threshold, future, span = self.in_flight.popleft()
            if span is not None:
                span.set_attribute("scored", future.exception() is None)
                span.end()
            try:
                probability = future.result()
            except TurnScoringUnavailable as exc:
                out.append(vad_pb2.DetectResponse(problem=common_pb2.Problem(
                    code=_UNAVAILABLE, field="turn_scoring",
                    message=f"the pause at offset {job.pause_start} was not scored: {exc}")))
                continue
            score = vad_pb2.TurnScore(
                probability=probability, end_of_turn=probability >= threshold,
                pause_start_samples=job.pause_start, decided_at_samples=job.decided_at,
                pause_ms=(job.decided_at - job.pause_start) * 1000 // self.rate)
            if trace.traceparent:
                score.trace.CopyFrom(trace)
            out.append(vad_pb2.DetectResponse(turn=score))
        return out

    def next_turn_result(self) -> asyncio.Future[float] | None:
        return self.in_flight[0][3] if self.in_flight else None

    def update_params(self, msg: common_pb2.VadParams) -> vad_pb2.DetectResponse:
        try:
            params = self.detector.params.updated(**params_changes(msg))
        except ParamsError as exc:
            return vad_pb2.DetectResponse(problem=common_pb2.Problem(
                code=_INVALID, field=exc.field,
                message=f"params update rejected, previous params stay in effect: {exc}"))
        if params.turn_scoring and not self.scorer.available:
            return self._no_model_problem("params update rejected, previous params stay in effect")
        self.detector.set_params(params)
        return vad_pb2.DetectResponse(params_applied=vad_pb2.VadParamsApplied(
            params=params_to_proto(params), effective_from_samples=self.next_offset - self.rebuffer.pending))

    def finish(self) -> list[vad_pb2.DetectResponse]:
        """End of audio: an open utterance stops (turn scores still in flight follow, see Detect)."""
        return [self._event(ev, None) for ev in self.detector.finish()]

    @staticmethod
    def _event(ev: Event, trace: common_pb2.TraceContext | None) -> vad_pb2.DetectResponse:
        event = vad_pb2.VadEvent(type=_EVENT_TYPES[ev.kind], offset_samples=ev.offset,
                                 decided_at_samples=ev.decided_at, probability=ev.probability)
        if trace is not None and trace.traceparent:
            event.trace.CopyFrom(trace)
        return vad_pb2.DetectResponse(event=event)


class VadServicer(vad_pb2_grpc.VadServicer):
    def __init__(self, batcher: Batcher, defaults: Params, idle_timeout_s: float, clock: Clock | None = None,
                 scorer: TurnScorer | None = None):
        self.batcher = batcher
        self.scorer = scorer or TurnScorer(None, reason="no turn model loaded")
        self.defaults = defaults
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock or RealClock()

    async def Detect(self, request_iterator: AsyncIterable[vad_pb2.DetectRequest],
                     context: grpc.aio.ServicerContext) -> AsyncIterator[vad_pb2.DetectResponse]:
        stream: DetectStream | None = None
        requests = guard_idle(request_iterator, self.idle_timeout_s, self.clock).__aiter__()
        reading: asyncio.Future[vad_pb2.DetectRequest] | None = None  # a read racing a turn score
        self.batcher.stream_opened()
        try:
            while True:
                pending = stream.next_turn_result() if stream is not None else None
                try:
                    if pending is None and reading is None:
                        req = await requests.__anext__()  # the plain path: no turn score in flight
                    else:
                        # Wait for the next request or the oldest turn score, whichever comes first,
                        # so a score is sent as soon as it is ready, not with the next audio chunk.
                        reading = reading or asyncio.ensure_future(requests.__anext__())
                        if pending is not None:
                            await asyncio.wait((reading, pending), return_when=asyncio.FIRST_COMPLETED)
                            for resp in stream.turn_results():  # type: ignore[union-attr]
                                yield resp
                            if not reading.done():
                                continue
                        req, reading = await reading, None
                except StopAsyncIteration:
                    break
                kind = req.WhichOneof("msg")
                if kind == "audio" and stream is not None:
                    for window in stream.windows(req.audio):
                        probability = await self.batcher.infer(stream.model, window.samples)
                        for resp in stream.decide(window, probability, req.audio.trace):
                            yield resp
                    for resp in stream.turn_results():
                        yield resp
                elif kind == "params" and stream is not None:
                    yield stream.update_params(req.params)
                elif kind == "config" and stream is None:
                    stream = DetectStream(req.config, self.defaults, self.scorer)
                    with logs.bind(stream_id=req.config.stream_id):
                        log.info("stream opened", extra={"rate": stream.rate})
                    for resp in stream.startup:
                        yield resp
                elif kind == "config":
                    raise BadRequest("config was already sent: it is accepted once, as the first message; "
                                     "send params to change thresholds mid-stream")
                elif kind is None:
                    raise BadRequest("empty DetectRequest: set one of config, audio or params")
                else:
                    raise BadRequest(f"the first message must be config (sample rate, params), got {kind}")
            if stream is not None:
                for resp in stream.finish():
                    yield resp
                while (pending := stream.next_turn_result()) is not None:  # pauses scored before the end
                    await asyncio.wait((pending,))
                    for resp in stream.turn_results():
                        yield resp
        except (BadRequest, InvalidArgument) as exc:
            log.warning("stream rejected", extra={"reason": str(exc)})
            await settle(requests, reading)  # the caller's in-flight writes land first: it then sees our status
            reading = None
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except InferenceUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; retry on another instance")
        except IdleTimeout as exc:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"{exc}: idle VAD streams are closed to free their slot; open a new stream")
        finally:
            if reading is not None:
                reading.cancel()
            if stream is not None:
                for *_, future, span in stream.in_flight:
                    future.cancel()  # the scorer skips cancelled pauses
                    if span is not None:
                        span.end()
            self.batcher.stream_closed()
