"""ORCHESTRATOR_SESSION_PORT serves Session.Connect apart from the public API, so a network policy
can let only media reach it: each port answers only its own service (the other is UNIMPLEMENTED)."""
from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from interview.v1 import interviews_pb2, interviews_pb2_grpc, session_pb2, session_pb2_grpc
from tests.support.procs import ServiceProcess, free_port

KEY = "k" * 32


def session_status(address: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        stream = session_pb2_grpc.SessionStub(channel).Connect(iter([session_pb2.ClientMessage()]), timeout=5)
        try:
            for _ in stream:
                pass
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def api_status(address: str) -> grpc.StatusCode:
    with grpc.insecure_channel(address) as channel:
        try:
            interviews_pb2_grpc.InterviewsStub(channel).GetInterview(
                interviews_pb2.GetInterviewRequest(interview_id="iv_missing"), timeout=5,
                metadata=[("authorization", f"Bearer {KEY}")])
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


@pytest.fixture
def orchestrator(redis_server, tmp_path):
    session_port = free_port()
    proc = ServiceProcess("orchestrator", env={
        "ORCHESTRATOR_SESSION_PORT": str(session_port), "ORCHESTRATOR_API_KEYS": f"t:{KEY}",
        "REDIS_URL": redis_server.url, "ORCHESTRATOR_DEV_KEY_FILE": str(tmp_path / "key")})
    with proc:
        yield proc, f"127.0.0.1:{session_port}"
    assert proc.proc is not None and proc.proc.returncode == 0, proc.logs()[-2000:]


def test_session_and_api_each_on_their_own_port(orchestrator):
    proc, session_address = orchestrator
    assert session_status(proc.address) == grpc.StatusCode.UNIMPLEMENTED
    assert api_status(session_address) == grpc.StatusCode.UNIMPLEMENTED
    assert api_status(proc.address) == grpc.StatusCode.INVALID_ARGUMENT  # served: the API checked the id
    # An empty first message is refused by the session servicer itself: it is served here.
    assert session_status(session_address) not in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.UNAVAILABLE)
    with grpc.insecure_channel(session_address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="interview.v1.Session"))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
