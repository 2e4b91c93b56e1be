"""OpenTelemetry set-up (OTEL_* env vars) and per-turn trace context helpers.

gRPC instrumentation gives one span per stream, and our streams last a whole interview, so each
turn starts its own trace and carries it in the per-turn messages (TraceContext fields).
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger("telemetry")
_propagator = TraceContextTextMapPropagator()
_configured = False


def setup_tracing(service: str) -> None:
    """Install a tracer provider per the standard OTEL_* variables.

    OTEL_SDK_DISABLED=true turns it off; OTEL_TRACES_EXPORTER=console prints spans,
    =otlp exports over OTLP/gRPC to OTEL_EXPORTER_OTLP_ENDPOINT (the exporter is a dependency;
    OTEL_EXPORTER_OTLP_INSECURE=true for a plaintext collector); unset = spans are created (ids
    propagate, logs can carry them) but not exported.
    """
    global _configured
    if _configured or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", f"interviewer-{service}")})
    provider = TracerProvider(resource=resource)
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "none").lower()
    exporter: Any = None
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def server_interceptors() -> list[Any]:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]


def client_interceptors() -> list[Any]:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return []
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def inject(carrier_msg: Any) -> None:
    """Write the current span's context into a TraceContext message."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    carrier_msg.traceparent = carrier.get("traceparent", "")
    carrier_msg.tracestate = carrier.get("tracestate", "")


def inject_span(span: trace.Span, carrier_msg: Any) -> None:
    """Write `span`'s context (not the current one) into a TraceContext message."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    carrier_msg.traceparent = carrier.get("traceparent", "")
    carrier_msg.tracestate = carrier.get("tracestate", "")


def extract(carrier_msg: Any) -> otel_context.Context:
    """An OTel context from a TraceContext message (empty context if it carries none)."""
    carrier = {"traceparent": carrier_msg.traceparent, "tracestate": carrier_msg.tracestate}
    return _propagator.extract({k: v for k, v in carrier.items() if v})


def start_turn(name: str, **attributes: Any) -> trace.Span:
    """The root span of a conversational turn: a new trace, not a child of the interview-long
    stream span that is current; linked to it, so a trace viewer can still go to the session."""
    current = trace.get_current_span().get_span_context()
    links = [trace.Link(current)] if current.is_valid else []
    return trace.get_tracer("interviewer").start_span(name, context=otel_context.Context(), attributes=attributes,
                                                      links=links)


def start_child(carrier_msg: Any, name: str, **attributes: Any) -> trace.Span:
    """Start (not enter) a span in the per-turn trace a message carries (a TraceContext field):
    for a stage that ends in another callback than it began (a FINALIZE answered later, a
    generation's first audio played). The caller ends it. A message without a trace context gets
    a root span of its own."""
    tracer = trace.get_tracer("interviewer")
    return tracer.start_span(name, context=extract(carrier_msg), attributes=attributes)


@contextmanager
def child_span(carrier_msg: Any, name: str, **attributes: Any) -> Iterator[trace.Span]:
    """A span in the per-turn trace a message carries: servers open their stage of a turn
    (recognise, generate, synthesise) under the orchestrator's turn span, across processes.

    The span is not made current: servicers are async generators whose frames resume in other
    contexts between yields, where attaching and detaching a context would not pair up. An
    exception ends it with an error status."""
    span = start_child(carrier_msg, name, **attributes)
    try:
        yield span
    except BaseException as exc:
        if isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
            span.set_attribute("cancelled", True)  # the caller went away (barge-in): not an error
        else:
            span.set_status(trace.StatusCode.ERROR, type(exc).__name__)
            span.set_attribute("error.type", type(exc).__name__)
        raise
    finally:
        span.end()
