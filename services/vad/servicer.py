"""Vad.Detect: one bidi stream per caller; config first, then audio and params updates.

Per stream: a Rebuffer (chunks of any size -> exact Silero windows), the stream's model state
(inference goes through the process-wide Batcher) and a Detector. Errors that make the rest of
the stream meaningless (bad config, bad audio) end it with INVALID_ARGUMENT; a bad params update
is answered in-band with a Problem and the stream keeps its old params.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterable, AsyncIterator

import grpc

from interview.v1 import common_pb2, vad_pb2, vad_pb2_grpc
from services.common import logs
from services.common.audio import Rebuffer, Window, check_chunk
from services.common.clock import Clock, RealClock
from services.common.errors import InvalidArgument
from services.vad.batcher import Batcher, InferenceUnavailable
from services.vad.detector import Detector, Event, Kind, Params, ParamsError
from services.vad.idle import IdleTimeout, guard_idle
from services.vad.model import WINDOWS, StreamState

log = logging.getLogger("vad.servicer")

PARAM_FIELDS = ("activation_threshold", "deactivation_threshold", "min_speech_ms", "min_silence_ms", "speech_pad_ms")
_EVENT_TYPES = {Kind.STARTED: vad_pb2.SPEECH_STARTED, Kind.STOPPED: vad_pb2.SPEECH_STOPPED}


class BadRequest(Exception):
    """Ends the stream with INVALID_ARGUMENT; the message is for a person."""


def params_changes(msg: common_pb2.VadParams) -> dict[str, float | int | None]:
    return {name: getattr(msg, name) if msg.HasField(name) else None for name in PARAM_FIELDS}


def params_to_proto(params: Params) -> common_pb2.VadParams:
    return common_pb2.VadParams(**{name: getattr(params, name) for name in PARAM_FIELDS})


class DetectStream:
    """The state of one Detect stream after its config was accepted."""

    def __init__(self, config: vad_pb2.VadConfig, defaults: Params):
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
        self.detector = Detector(rate, params)

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
        return out

    def update_params(self, msg: common_pb2.VadParams) -> vad_pb2.DetectResponse:
        try:
            params = self.detector.params.updated(**params_changes(msg))
        except ParamsError as exc:
            return vad_pb2.DetectResponse(problem=common_pb2.Problem(
                code=grpc.StatusCode.INVALID_ARGUMENT.value[0], field=exc.field,
                message=f"params update rejected, previous params stay in effect: {exc}"))
        self.detector.set_params(params)
        return vad_pb2.DetectResponse(params_applied=vad_pb2.VadParamsApplied(
            params=params_to_proto(params), effective_from_samples=self.next_offset - self.rebuffer.pending))

    def finish(self) -> list[vad_pb2.DetectResponse]:
        return [self._event(ev, None) for ev in self.detector.finish()]

    @staticmethod
    def _event(ev: Event, trace: common_pb2.TraceContext | None) -> vad_pb2.DetectResponse:
        event = vad_pb2.VadEvent(type=_EVENT_TYPES[ev.kind], offset_samples=ev.offset,
                                 decided_at_samples=ev.decided_at, probability=ev.probability)
        if trace is not None and trace.traceparent:
            event.trace.CopyFrom(trace)
        return vad_pb2.DetectResponse(event=event)


class VadServicer(vad_pb2_grpc.VadServicer):
    def __init__(self, batcher: Batcher, defaults: Params, idle_timeout_s: float, clock: Clock | None = None):
        self.batcher = batcher
        self.defaults = defaults
        self.idle_timeout_s = idle_timeout_s
        self.clock = clock or RealClock()

    async def Detect(self, request_iterator: AsyncIterable[vad_pb2.DetectRequest],
                     context: grpc.aio.ServicerContext) -> AsyncIterator[vad_pb2.DetectResponse]:
        stream: DetectStream | None = None
        self.batcher.stream_opened()
        try:
            async for req in guard_idle(request_iterator, self.idle_timeout_s, self.clock):
                kind = req.WhichOneof("msg")
                if kind == "audio" and stream is not None:
                    for window in stream.windows(req.audio):
                        probability = await self.batcher.infer(stream.model, window.samples)
                        for resp in stream.decide(window, probability, req.audio.trace):
                            yield resp
                elif kind == "params" and stream is not None:
                    yield stream.update_params(req.params)
                elif kind == "config" and stream is None:
                    stream = DetectStream(req.config, self.defaults)
                    with logs.bind(stream_id=req.config.stream_id):
                        log.info("stream opened", extra={"rate": stream.rate})
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
        except (BadRequest, InvalidArgument) as exc:
            log.warning("stream rejected", extra={"reason": str(exc)})
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except InferenceUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{exc}; retry on another instance")
        except IdleTimeout as exc:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                                f"{exc}: idle VAD streams are closed to free their slot; open a new stream")
        finally:
            self.batcher.stream_closed()
