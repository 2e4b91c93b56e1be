"""Client channels balance streams round_robin across instances; per-turn trace context travels
in messages."""
import grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from interview.v1 import common_pb2, vad_pb2_grpc
from services.common import telemetry
from services.common.channels import create_channel, service_target
from tests.common.test_server import _audio, _runtime


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
