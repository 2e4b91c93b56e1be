"""Client channels balance streams round_robin across instances; per-turn trace context travels
in messages."""
import asyncio
import time

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from interview.v1 import common_pb2, vad_pb2_grpc
from services.common import telemetry
from services.common.channels import create_channel, service_target
from tests.common.test_server import _audio, _runtime
from tests.support.procs import free_port


async def test_round_robin_spreads_streams_over_instances():
    runtimes = [await _runtime(max_streams=100) for _ in range(2)]
    try:
        target = "ipv4:" + ",".join(f"127.0.0.1:{rt.port}" for rt, _ in runtimes)
        async with create_channel(target) as ch:
            await ch.channel_ready()
            stub = vad_pb2_grpc.VadStub(ch)
            calls = []
            for i in range(10):
                call = stub.Detect()
                await call.write(_audio(i))
                assert (await call.read()).probability.window_end_samples == i
                calls.append(call)
            # both instances get a fair share (the first picks may precede the second connection)
            assert sum(rt.admission.active for rt, _ in runtimes) == 10
            assert min(rt.admission.active for rt, _ in runtimes) >= 3
            for call in calls:
                call.cancel()
    finally:
        for rt, _ in runtimes:
            await rt.stop(0)


def test_service_target_reads_addr_variables(monkeypatch):
    assert service_target("vad") == "127.0.0.1:50052"
    monkeypatch.setenv("VAD_ADDR", "dns:///vad:50052")
    assert service_target("vad") == "dns:///vad:50052"


def test_trace_context_round_trips_through_a_message(monkeypatch):
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)  # the suite disables the SDK by default
    tracer = TracerProvider().get_tracer("test")
    msg = common_pb2.AudioChunk()
    with tracer.start_as_current_span("turn") as span:
        telemetry.inject(msg.trace)
        sent = span.get_span_context()
    assert msg.trace.traceparent.startswith("00-")
    received = trace.get_current_span(telemetry.extract(msg.trace)).get_span_context()
    assert received.trace_id == sent.trace_id and received.span_id == sent.span_id
    empty = trace.get_current_span(telemetry.extract(common_pb2.TraceContext())).get_span_context()
    assert not empty.is_valid


async def test_a_restarted_service_is_reached_within_the_capped_reconnect_backoff():
    """gRPC's default backoff grows 1 s × 1.6ⁿ (after a 6 s outage the next try is ~9 s in, up
    to 120 s later on); capped at 2 s, the channel finds the restarted server within ~2 s."""
    port = free_port()
    async with create_channel(f"127.0.0.1:{port}") as ch:
        ch.get_state(try_to_connect=True)
        await asyncio.sleep(6.0)  # nothing listens: the channel backs off
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            t0 = time.monotonic()
            await asyncio.wait_for(ch.channel_ready(), 10)
            assert time.monotonic() - t0 < 2.6
        finally:
            await server.stop(0)


async def test_a_service_exports_its_spans_over_otlp_under_the_callers_trace():
    """OTEL_TRACES_EXPORTER=otlp works out of the box (the exporter is a dependency): a real
    service process exports the span of a call to an in-test OTLP receiver, as a child of the
    trace the caller propagated."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests.support.otlp import OtlpReceiver
    from tests.support.procs import ServiceProcess

    trace_id, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    receiver = await OtlpReceiver().start()
    try:
        with ServiceProcess("tts", env=receiver.env("tts")) as proc:
            async with grpc.aio.insecure_channel(proc.address) as channel:
                await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), metadata=(("traceparent", f"00-{trace_id}-{caller_span}-01"),))
            spans = await receiver.wait_for(lambda s: s.trace_id == trace_id)
    finally:
        await receiver.stop()
    assert spans, f"no span of trace {trace_id} exported; got {receiver.spans[:5]}"
    (span,) = spans
    assert span.service == "interviewer-tts" and span.name.endswith("Health/Check")
    assert span.parent_span_id == caller_span
    assert span.duration_ms > 0
