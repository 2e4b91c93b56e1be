"""grpc.aio server bootstrap shared by every service.

One place for: health (grpc.health.v1, NOT_SERVING while draining), server reflection, OTel
instrumentation, Prometheus metrics (calls by method and code, open streams), message-size and keepalive options, admission control (RESOURCE_EXHAUSTED at
capacity), and graceful shutdown on SIGTERM (NOT_SERVING, stop accepting, drain for a grace
period, exit 0).

Bidi handlers must be async generators over `request_iterator` (not context.read/write): the
OTel aio interceptor breaks the latter.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.common import config, logs, metrics, telemetry
from services.common.config import env
from services.common.tls import ServerTls

log = logging.getLogger("server")

DEFAULT_PORTS = {
    "orchestrator": 50051,
    "vad": 50052,
    "stt": 50053,
    "llm": 50054,
    "tts": 50055,
    "video": 50056,
}
MB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    """Settings every gRPC service has, read as <SERVICE>_HOST, <SERVICE>_PORT, ..."""

    host: str = env("127.0.0.1", help="address to bind; 0.0.0.0 in containers")
    port: int = env(0, min=0, max=65535, help="gRPC port; 0 = the service's default port")
    max_streams: int = env(1000, min=1, help="concurrent streams before RESOURCE_EXHAUSTED")
    max_message_bytes: int = env(4 * MB, min=1024, help="largest gRPC message accepted or sent")
    shutdown_grace_s: float = env(10.0, min=0, help="on SIGTERM, how long open streams may drain")
    keepalive_s: float = env(30.0, min=1, help="HTTP/2 keepalive ping interval")
    metrics_port: int = env(0, min=-1, max=65535,
                            help="Prometheus /metrics port; 0 = the service's default (91xx), -1 = off")
    max_connection_age_s: float = env(0.0, min=0, help="after this long a client connection gets GOAWAY, so clients "
                                                       "re-resolve and new streams reach new pods; 0 = never")
    max_connection_age_grace_s: float = env(0.0, min=0, help="streams open at GOAWAY may finish for this long "
                                                             "(>= the longest interview); 0 = no limit")
    log_level: str = env("INFO", name="LOG_LEVEL", parse=str.upper, choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    tls: ServerTls = field(default_factory=ServerTls)  # <NAME>_TLS_CERT/_KEY/_CLIENT_CA; none = plaintext


def channel_options(max_message_bytes: int, keepalive_s: float) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def connection_age_options(settings: ServerSettings) -> list[tuple[str, int]]:
    """Long-lived streams pin a client to the pods it resolved at connect time; a maximum connection
    age makes clients reconnect (and rebalance) while the grace lets running interviews finish."""
    if not settings.max_connection_age_s:
        return []
    options = [("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000))]
    if settings.max_connection_age_grace_s:
        options.append(("grpc.max_connection_age_grace_ms", int(settings.max_connection_age_grace_s * 1000)))
    return options


_EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")


class AdmissionInterceptor(grpc.aio.ServerInterceptor):
    """Caps concurrent streaming calls per process; beyond it, new streams get RESOURCE_EXHAUSTED
    at once instead of degrading every stream already running."""

    def __init__(self, service: str, max_streams: int):
        self.service = service
        self.max_streams = max_streams
        self.active = 0

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method.startswith(_EXEMPT_PREFIXES):
            return handler
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(
                self._wrap(handler.stream_stream), handler.request_deserializer, handler.response_serializer)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(
                self._wrap(handler.unary_stream), handler.request_deserializer, handler.response_serializer)
        return handler

    def _wrap(self, fn: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def admitted(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            if self.active >= self.max_streams:
                metrics.REFUSED_AT_CAPACITY.labels(self.service).inc()
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    f"{self.service} is at capacity ({self.max_streams} concurrent streams); "
                                    "retry shortly or use another instance")
            self.active += 1
            try:
                async for response in fn(request, context):
                    yield response
            finally:
                self.active -= 1

        return admitted


class ServiceRuntime:
    """A configured grpc.aio server with health, reflection, OTel and admission control."""

    def __init__(self, name: str, settings: ServerSettings):
        self.name = name
        self.settings = settings
        self.port = settings.port or DEFAULT_PORTS.get(name, 0)
        self.admission = AdmissionInterceptor(name, settings.max_streams)
        self.server = grpc.aio.server(
            interceptors=[*telemetry.server_interceptors(), metrics.MetricsInterceptor(name), self.admission],
            # gRPC shares a port between servers by default (SO_REUSEPORT): a second instance, or a
            # port clash, would silently take half the connections. Refuse it at bind instead.
            options=[*channel_options(settings.max_message_bytes, settings.keepalive_s),
                     *connection_age_options(settings), ("grpc.so_reuseport", 0)],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._services: list[str] = []
        self._cleanups: list[Callable[[], Awaitable[None]]] = []
        self._on_started: list[Callable[[], Awaitable[None]]] = []
        self._stopping: asyncio.Event | None = None

    def add(self, service_full_name: str, add_fn: Callable[[Any, grpc.aio.Server], None], servicer: Any) -> None:
        """Register a servicer, e.g. add(VAD_SERVICE, vad_pb2_grpc.add_VadServicer_to_server, s)."""
        add_fn(servicer, self.server)
        self._services.append(service_full_name)

    def on_shutdown(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run after the server has drained (close provider clients, executors, ...)."""
        self._cleanups.append(cleanup)

    def on_started(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run once serving (e.g. a service whose health depends on its providers sets it here)."""
        self._on_started.append(hook)

    async def start(self) -> int:
        reflection.enable_server_reflection(
            [*self._services, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server)
        address = f"{self.settings.host}:{self.port}"
        creds = self.settings.tls.credentials()
        try:
            bound = (self.server.add_secure_port(address, creds) if creds is not None
                     else self.server.add_insecure_port(address))
        except RuntimeError:
            bound = 0
        if bound == 0:
            raise RuntimeError(f"{self.name}: cannot listen on {address}: another process already listens on "
                               f"that port, or the address is not this machine's ({self.name.upper()}_PORT / _HOST)")
        self.port = bound
        await self.server.start()
        for svc in ["", *self._services]:
            await self.health.set(svc, health_pb2.HealthCheckResponse.SERVING)
        for hook in self._on_started:
            await hook()
        log.info("serving", extra={"port": bound, "services": ",".join(self._services),
                                   "tls": "mutual" if self.settings.tls.tls_client_ca else bool(creds)})
        return bound

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING first (load balancers stop sending), then drain, then clean up."""
        grace = self.settings.shutdown_grace_s if grace is None else grace
        log.info("draining", extra={"grace_s": grace, "active_streams": self.admission.active})
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for cleanup in reversed(self._cleanups):
            try:
                await cleanup()
            except Exception:  # one failing cleanup must not skip the others
                log.exception("cleanup failed")
        log.info("stopped")

    async def run_until_signal(self) -> None:
        self._stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        await self.stop()


C = TypeVar("C")


def run_service(name: str, config_cls: type[C], build: Callable[[C, ServiceRuntime], Awaitable[None]],
                prefix: str | None = None) -> None:
    """Entry point of every service: config (exit 2 listing every problem), logs, tracing,
    build servicers, serve until SIGTERM, drain, exit 0."""
    prefix = prefix if prefix is not None else name
    cfg = config.load_or_exit(config_cls, prefix)
    settings: ServerSettings = getattr(cfg, "server")
    if problems := settings.tls.problems(prefix):
        print(f"{config_cls.__name__}: {config.ConfigError(problems)}", file=sys.stderr)
        raise SystemExit(2)
    logs.setup(name, settings.log_level)
    telemetry.setup_tracing(name)

    async def main() -> None:
        metrics.serve(name, settings.host, settings.metrics_port)
        metrics.watch_event_loop(name, asyncio.get_running_loop())
        runtime = ServiceRuntime(name, settings)
        await build(cfg, runtime)
        await runtime.start()
        await runtime.run_until_signal()

    asyncio.run(main())
