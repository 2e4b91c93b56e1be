"""Every service serves Prometheus /metrics on its own port: calls by method and status code,
open streams. Real processes, scraped over HTTP."""
from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.metrics import DEFAULT_METRICS_PORTS, metrics_port
from tests.support.procs import ROOT, RedisServer, ServiceProcess, free_port


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


# Each service's own series, as samples (not just declared): the hook in that service put them there.
OWN_SERIES = {
    "orchestrator": ["interviewer_active_sessions 0.0", 'interviewer_turn_stage_seconds_bucket{le="0.5",stage="first_audio_sent"}',
                     "interviewer_outbox_depth 0.0", "interviewer_turns_interrupted_total"],
    "vad": ["interviewer_vad_batch_size_count", "interviewer_vad_turn_score_seconds_count",
            "interviewer_vad_turn_score_batch_size_count"],
    "stt": ['interviewer_provider_breaker_state{provider="offline"} 0.0', "# TYPE interviewer_provider_fallbacks_total counter"],
    "llm": ['interviewer_provider_breaker_state{provider="scripted"} 0.0', "# TYPE interviewer_provider_failures_total counter"],
    "tts": ['interviewer_provider_breaker_state{provider="offline"} 0.0', "# TYPE interviewer_provider_fallbacks_total counter"],
    "video": ["# TYPE interviewer_video_filtered_observations_total counter"],
    "media": ["interviewer_media_peers 0.0", "# TYPE interviewer_media_dropped_frames_total counter"],
}


def scrape_when_up(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, "the process exited"
        try:
            return scrape(port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_every_service_process_serves_its_named_series():
    with contextlib.ExitStack() as stack:
        redis_server = stack.enter_context(RedisServer())
        procs = {name: stack.enter_context(ServiceProcess(name, env=env)) for name, env in (
            ("vad", {}), ("stt", {}), ("llm", {}), ("tts", {"TTS_PROVIDERS": "offline"}), ("video", {}))}
        procs["orchestrator"] = stack.enter_context(ServiceProcess("orchestrator", env={
            "REDIS_URL": redis_server.url, "ORCHESTRATOR_API_KEYS": "m:" + secrets.token_hex(16),
            "ORCHESTRATOR_JOIN_TOKEN_SECRET": secrets.token_hex(32),
            **{f"{n.upper()}_ADDR": p.address for n, p in procs.items()}}))
        texts = {name: scrape(p.metrics_port) for name, p in procs.items()}
        media_metrics = free_port()
        media = subprocess.Popen([sys.executable, "-m", "services.media"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, env={
                                     **os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true",
                                     "MEDIA_PORT": str(free_port()), "MEDIA_METRICS_PORT": str(media_metrics),
                                     "ORCHESTRATOR_ADDR": procs["orchestrator"].address})
        try:
            texts["media"] = scrape_when_up(media_metrics, media)
        finally:
            media.kill()
            media.wait()
    for service, series in OWN_SERIES.items():
        for s in series:
            assert s in texts[service], f"{service}: {s} not served"
        assert "interview_id" not in texts[service] and "session_id" not in texts[service]  # cardinality


def test_the_grafana_dashboard_queries_only_series_the_services_declare():
    import json
    import re

    from prometheus_client import REGISTRY

    import services.common.metrics  # noqa: F401  (declares every series)

    declared = {m.name for m in REGISTRY.collect()}  # family names: counters without _total
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "interviewer.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"interviewer_[a-z_]+", target["expr"])}
    used = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert used and used <= declared, sorted(used - declared)
