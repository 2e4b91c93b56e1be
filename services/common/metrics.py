"""Prometheus metrics: one registry per process, served on a metrics port of its own.

Every series is declared here, so names, labels and help text live in one place and the
dashboard (deploy/grafana/) and the README can list them. Labels never carry an interview,
session or stream id: those would make one time series per interview (cardinality); follow one
interview in the logs instead.

`<SERVICE>_METRICS_PORT`: 0 (the default) = the service's documented port (DEFAULT_METRICS_PORTS),
-1 = off. Only a service's process entry (`python -m services.NAME`) serves them; in-process test
servers count into the registry without binding a port.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger("metrics")

DEFAULT_METRICS_PORTS = {
    "orchestrator": 9101,
    "vad": 9102,
    "stt": 9103,
    "llm": 9104,
    "tts": 9105,
    "video": 9106,
    "media": 9107,
}

# Seconds: voice turns live between ~10 ms and a few seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)

# ---- every service (server bootstrap) ----
RPCS = Counter("interviewer_grpc_server_handled", "gRPC calls finished, by method and status code",
               ["service", "method", "code"])
RPC_SECONDS = Histogram("interviewer_grpc_server_handling_seconds",
                        "time to answer unary gRPC calls (streams are counted, not timed)",
                        ["service", "method"], buckets=LATENCY_BUCKETS)
ACTIVE_STREAMS = Gauge("interviewer_grpc_active_streams", "streaming gRPC calls open now", ["service"])
REFUSED_AT_CAPACITY = Counter("interviewer_grpc_refused_at_capacity",
                              "streams refused with RESOURCE_EXHAUSTED by admission control", ["service"])
# Leak signals (the soak test reads them): asyncio tasks alive on the service's event loop and
# Python threads. prometheus-client's process collector adds RSS and open file descriptors.
ASYNCIO_TASKS = Gauge("interviewer_asyncio_tasks", "asyncio tasks alive on the service's event loop", ["service"])
THREADS = Gauge("interviewer_python_threads", "Python threads alive in the process", ["service"])

# ---- orchestrator ----
ACTIVE_SESSIONS = Gauge("interviewer_active_sessions", "live interview sessions on this orchestrator")
TURN_STAGE_SECONDS = Histogram("interviewer_turn_stage_seconds",
                               "per-turn latency from the VAD's SPEECH_STOPPED to each stage (TurnMetrics)",
                               ["stage"], buckets=LATENCY_BUCKETS)
TURNS_INTERRUPTED = Counter("interviewer_turns_interrupted", "agent replies cut off by a committed barge-in")
OUTBOX_DEPTH = Gauge("interviewer_outbox_depth", "transcript entries waiting in the outboxes for Redis")

# ---- vad ----
VAD_BATCH_SIZE = Histogram("interviewer_vad_batch_size", "Silero windows per batched inference",
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128))
TURN_SCORE_SECONDS = Histogram("interviewer_vad_turn_score_seconds",
                               "time of one batched turn-model call (Smart Turn)", buckets=LATENCY_BUCKETS)
TURN_SCORE_BATCH_SIZE = Histogram("interviewer_vad_turn_score_batch_size", "pauses scored per turn-model call",
                                  buckets=(1, 2, 4, 8, 16, 32))

# ---- stt / llm / tts (services/common/fallback.py) ----
PROVIDER_FAILURES = Counter("interviewer_provider_failures", "provider calls that failed", ["provider"])
PROVIDER_FALLBACKS = Counter("interviewer_provider_fallbacks", "requests moved to the next provider in the chain",
                             ["from_provider", "to_provider"])
BREAKER_STATE = Gauge("interviewer_provider_breaker_state", "circuit breaker: 0 closed, 1 half-open, 2 open",
                      ["provider"])

# ---- media ----
MEDIA_PEERS = Gauge("interviewer_media_peers", "WebRTC peers connected to this media instance")
MEDIA_DROPPED_FRAMES = Counter("interviewer_media_dropped_frames",
                               "agent audio chunks dropped at the playback buffer cap", ["kind"])

# ---- video ----
FILTERED_OBSERVATIONS = Counter("interviewer_video_filtered_observations",
                                "observations the guardrail dropped, by reason", ["reason"])


def watch_event_loop(service: str, loop: asyncio.AbstractEventLoop) -> None:
    """Export the task and thread counts of `loop`'s process (read at scrape time)."""
    import threading

    def tasks() -> int:
        try:
            return len(asyncio.all_tasks(loop))
        except RuntimeError:  # the loop's task set changed during the copy (all_tasks already retried)
            return -1

    ASYNCIO_TASKS.labels(service).set_function(tasks)
    THREADS.labels(service).set_function(threading.active_count)

# ---- orchestrator: transcript entries that could not reach Redis at a session's end ----
TRANSCRIPT_SPILLED = Counter("interviewer_transcript_spilled",
                             "transcript entries written to the local spill file (Redis unreachable at a session's end)")
TRANSCRIPT_SPILL_REPLAYED = Counter("interviewer_transcript_spill_replayed",
                                    "spilled transcript entries written into Redis once it returned")
TRANSCRIPT_SPILL_LOST = Counter("interviewer_transcript_spill_lost",
                                "transcript entries LOST: Redis unreachable and the spill file full or unusable")


def metrics_port(service: str, configured: int) -> int | None:
    """The port to serve on, or None when metrics are off."""
    if configured < 0:
        return None
    return configured or DEFAULT_METRICS_PORTS.get(service, 0)


def serve(service: str, host: str, configured_port: int) -> int | None:
    """Serve /metrics from a background thread (prometheus-client's own HTTP server); returns
    the bound port. A port already in use is logged and metrics stay off: a scrape target must
    never take a voice service down."""
    port = metrics_port(service, configured_port)
    if port is None:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        log.error("metrics port unavailable; serving no metrics", extra={"port": port, "error": str(exc)})
        return None
    bound = int(server.server_port)
    log.info("metrics", extra={"url": f"http://{host}:{bound}/metrics"})
    return bound


def _code_name(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return default.name


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every call by method and final status code; times unary calls."""

    def __init__(self, service: str):
        self.service = service
        ACTIVE_STREAMS.labels(service)  # present at 0 from the start, not from the first stream
        REFUSED_AT_CAPACITY.labels(service)

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith("/grpc.reflection."):
            return handler
        method = details.method.rsplit("/", 1)[-1]
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method), handler.request_deserializer, handler.response_serializer)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, method), handler.request_deserializer, handler.response_serializer)
        if handler.request_streaming:
            return handler  # no client-streaming methods in this product
        return grpc.unary_unary_rpc_method_handler(
            self._unary(handler.unary_unary, method), handler.request_deserializer, handler.response_serializer)

    def _unary(self, fn: Callable[..., Awaitable[Any]], method: str) -> Callable[..., Awaitable[Any]]:
        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            start = time.perf_counter()
            code = grpc.StatusCode.UNKNOWN
            try:
                response = await fn(request, context)
                code = grpc.StatusCode.OK
                return response
            finally:
                RPCS.labels(self.service, method, _code_name(context, code)).inc()
                RPC_SECONDS.labels(self.service, method).observe(time.perf_counter() - start)

        return counted

    def _stream(self, fn: Callable[..., AsyncIterator[Any]], method: str) -> Callable[..., AsyncIterator[Any]]:
        async def counted(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            code = grpc.StatusCode.UNKNOWN
            gauge = ACTIVE_STREAMS.labels(self.service)
            gauge.inc()
            try:
                async for response in fn(request, context):
                    yield response
                code = grpc.StatusCode.OK
            except BaseException as exc:
                if isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
                    code = grpc.StatusCode.CANCELLED
                raise
            finally:
                gauge.dec()
                RPCS.labels(self.service, method, _code_name(context, code)).inc()

        return counted

