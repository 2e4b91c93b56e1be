"""Every service serves Prometheus /metrics on its own port: calls by method and status code,
open streams. Real processes, scraped over HTTP."""
from __future__ import annotations

import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.metrics import DEFAULT_METRICS_PORTS, metrics_port
from tests.support.procs import ServiceProcess


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200
        return resp.read().decode()


def test_metrics_ports_are_documented_per_service_and_can_be_turned_off():
    assert metrics_port("vad", 0) == DEFAULT_METRICS_PORTS["vad"]
    assert metrics_port("vad", 9999) == 9999
    assert metrics_port("vad", -1) is None
    assert len(set(DEFAULT_METRICS_PORTS.values())) == len(DEFAULT_METRICS_PORTS)


@pytest.mark.parametrize("service", ["llm", "tts"])
async def test_a_service_process_counts_calls_by_method_and_code(service):
    with ServiceProcess(service) as proc:
        async with grpc.aio.insecure_channel(proc.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await health.Check(health_pb2.HealthCheckRequest(service=""))
            with pytest.raises(grpc.aio.AioRpcError):
                await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        text = scrape(proc.metrics_port)
    assert f'interviewer_grpc_server_handled_total{{code="OK",method="Check",service="{service}"}}' in text
    assert f'interviewer_grpc_server_handled_total{{code="NOT_FOUND",method="Check",service="{service}"}}' in text
    assert "interviewer_grpc_server_handling_seconds_bucket" in text
    assert f'interviewer_grpc_active_streams{{service="{service}"}} 0.0' in text
    assert "interview_id" not in text  # no per-interview labels (cardinality)
