"""The shared runtime: health, reflection, admission control, draining, SIGTERM."""
import asyncio
import signal

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from interview.v1 import common_pb2, vad_pb2, vad_pb2_grpc
from services.common.server import ServerSettings, ServiceRuntime
from tests.support.procs import ServiceProcess, free_port

SERVICES = {
    "vad": ["interview.v1.Vad"],
    "stt": ["interview.v1.Stt"],
    "llm": ["interview.v1.Llm"],
    "tts": ["interview.v1.Tts"],
    "video": ["interview.v1.Video"],
    "orchestrator": ["interview.v1.Interviews", "interview.v1.Session"],
}


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_service_serves_health_and_reflection_and_exits_0_on_sigterm(service, redis_server):
    # the orchestrator's named services are ready only with Redis reachable (readiness.py)
    env = {"REDIS_URL": redis_server.url} if service == "orchestrator" else None
    with ServiceProcess(service, env=env) as proc:
        with grpc.insecure_channel(proc.address) as ch:
            # What `grpcurl -plaintext ADDR list` does: list services over reflection ...
            db = ProtoReflectionDescriptorDatabase(ch)
            listed = set(db.get_services())
            assert set(SERVICES[service]) <= listed
            assert "grpc.health.v1.Health" in listed
            # ... and describe + call a method with messages built only from reflection.
            pool = descriptor_pool.DescriptorPool(db)
            for name in SERVICES[service]:
                assert len(pool.FindServiceByName(name).methods) > 0
            check = pool.FindServiceByName("grpc.health.v1.Health").methods_by_name["Check"]
            req_cls = message_factory.GetMessageClass(check.input_type)
            resp_cls = message_factory.GetMessageClass(check.output_type)
            call = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=req_cls.SerializeToString,
                                  response_deserializer=resp_cls.FromString)
            for name in ["", *SERVICES[service]]:
                assert call(req_cls(service=name), timeout=5).status == 1  # SERVING
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(20) == 0


class EchoVad(vad_pb2_grpc.VadServicer):
    """A trivial bidi servicer for exercising the runtime (not a VAD)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def Detect(self, request_iterator, context):
        async for req in request_iterator:
            if req.HasField("audio"):
                yield vad_pb2.DetectResponse(probability=vad_pb2.VadProbability(window_end_samples=req.audio.offset_samples))
                if req.audio.offset_samples == -1:
                    await self.release.wait()
                    yield vad_pb2.DetectResponse(probability=vad_pb2.VadProbability(window_end_samples=-2))


async def _runtime(max_streams: int = 2, grace: float = 5.0) -> tuple[ServiceRuntime, EchoVad]:
    rt = ServiceRuntime("vad", ServerSettings(port=free_port(), max_streams=max_streams, shutdown_grace_s=grace))
    servicer = EchoVad()
    rt.add("interview.v1.Vad", vad_pb2_grpc.add_VadServicer_to_server, servicer)
    await rt.start()
    return rt, servicer


def _audio(offset: int) -> vad_pb2.DetectRequest:
    return vad_pb2.DetectRequest(audio=common_pb2.AudioChunk(pcm=b"\0\0", offset_samples=offset))


async def test_admission_control_rejects_streams_beyond_capacity():
    rt, _ = await _runtime(max_streams=2)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{rt.port}") as ch:
            stub = vad_pb2_grpc.VadStub(ch)
            calls = [stub.Detect() for _ in range(2)]
            for i, c in enumerate(calls):
                await c.write(_audio(i))
                assert (await c.read()).probability.window_end_samples == i
            third = stub.Detect()
            with pytest.raises(grpc.aio.AioRpcError) as err:  # refused before or after its first write lands
                await third.write(_audio(7))
                await third.read()
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "at capacity (2 concurrent streams)" in err.value.details()
            # the admitted streams are unaffected, and a slot frees when one ends
            await calls[0].done_writing()
            await calls[0].wait_for_connection()
            await calls[1].write(_audio(5))
            assert (await calls[1].read()).probability.window_end_samples == 5
            assert await calls[0].read() == grpc.aio.EOF
            for _ in range(50):
                if rt.admission.active == 1:
                    break
                await asyncio.sleep(0.02)
            fourth = stub.Detect()
            await fourth.write(_audio(9))
            assert (await fourth.read()).probability.window_end_samples == 9
            for c in (calls[1], fourth):
                c.cancel()
    finally:
        await rt.stop(0)


async def test_draining_reports_not_serving_and_lets_open_streams_finish():
    rt, servicer = await _runtime(grace=5.0)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rt.port}") as ch:
        stub = vad_pb2_grpc.VadStub(ch)
        health = health_pb2_grpc.HealthStub(ch)
        call = stub.Detect()
        await call.write(_audio(-1))
        assert (await call.read()).probability.window_end_samples == -1
        stopping = asyncio.create_task(rt.stop())
        await asyncio.sleep(0.2)
        # Health says NOT_SERVING (or new RPCs are already refused) while draining.
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
        servicer.release.set()  # the in-flight stream still completes within the grace period
        assert (await call.read()).probability.window_end_samples == -2
        await call.done_writing()
        await asyncio.wait_for(stopping, 6)


async def _open_stream(stub: vad_pb2_grpc.VadStub, offset: int) -> grpc.aio.StreamStreamCall:
    call = stub.Detect()
    await call.write(_audio(offset))
    assert (await call.read()).probability.window_end_samples == offset
    return call


async def test_max_connection_age_rebalances_new_streams_and_its_grace_keeps_open_ones():
    """NAME_MAX_CONNECTION_AGE_S sends GOAWAY (clients reconnect, new streams may reach new pods);
    streams open at that moment keep going for NAME_MAX_CONNECTION_AGE_GRACE_S, and are cut after it."""
    for grace, survives in ((30.0, True), (0.3, False)):
        rt = ServiceRuntime("vad", ServerSettings(port=free_port(), max_connection_age_s=0.3,
                                                  max_connection_age_grace_s=grace))
        rt.add("interview.v1.Vad", vad_pb2_grpc.add_VadServicer_to_server, EchoVad())
        await rt.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{rt.port}") as ch:
                stub = vad_pb2_grpc.VadStub(ch)
                old = await _open_stream(stub, 1)
                await asyncio.sleep(1.5)  # past the age (+ jitter) and the short grace
                if survives:
                    await old.write(_audio(2))
                    assert (await old.read()).probability.window_end_samples == 2
                else:
                    assert await asyncio.wait_for(old.code(), 5) == grpc.StatusCode.UNAVAILABLE
                new = await _open_stream(stub, 3)  # a new connection after GOAWAY
                for c in (old, new):
                    c.cancel()
        finally:
            await rt.stop(0)


async def test_a_second_server_on_a_taken_port_fails_to_start_instead_of_sharing_it():
    # gRPC's default SO_REUSEPORT would let both listen and split the connections between them
    # (a second `make run`, or two services told the same port, silently half-broken)
    port = free_port()
    first = ServiceRuntime("vad", ServerSettings(port=port))
    first.add("interview.v1.Vad", vad_pb2_grpc.add_VadServicer_to_server, EchoVad())
    await first.start()
    try:
        second = ServiceRuntime("llm", ServerSettings(port=port))
        with pytest.raises(RuntimeError, match=rf"llm: cannot listen on 127\.0\.0\.1:{port}: another process"):
            await second.start()
    finally:
        await first.stop(0)
