"""Readiness follows Redis, liveness does not: a real orchestrator process, a real redis-server
killed and started again on the same port."""
from __future__ import annotations

import asyncio
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.orchestrator.conftest import orchestrator_env
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(60)
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    return (await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=3)).status


async def _until(stub: health_pb2_grpc.HealthStub, service: str, want: int, timeout: float = 10) -> float:
    t0 = time.monotonic()
    while await _status(stub, service) != want:
        assert time.monotonic() - t0 < timeout, f"{service!r} not {want} within {timeout} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def test_readiness_follows_redis_and_liveness_does_not() -> None:
    redis = RedisServer().start()
    proc = ServiceProcess("orchestrator", env=orchestrator_env(redis.url, "ready:", ORCHESTRATOR_COMMANDS="false"))
    try:
        proc.start()
        async with grpc.aio.insecure_channel(proc.address) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            await _until(stub, "readiness", SERVING)
            assert await _status(stub, "interview.v1.Interviews") == SERVING
            redis.kill()
            down = await _until(stub, "readiness", NOT_SERVING)
            assert await _status(stub, "interview.v1.Interviews") == NOT_SERVING
            assert await _status(stub, "interview.v1.Session") == NOT_SERVING
            assert await _status(stub, "") == SERVING  # liveness: never restarted for Redis
            redis = RedisServer(port=redis.port, data_dir=redis.dir).start()
            up = await _until(stub, "readiness", SERVING)
            assert await _status(stub, "interview.v1.Interviews") == SERVING
            print(f"NOT_SERVING {down:.2f} s after Redis died, SERVING {up:.2f} s after it returned")
    finally:
        proc.kill()
        redis.stop()
