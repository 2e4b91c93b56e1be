"""Client channels to our services: round_robin across resolved addresses, retries of UNAVAILABLE
for unary calls, keepalive, OTel client interceptors. Callers always pass deadlines."""
from __future__ import annotations

import json
import os
import subprocess
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common import telemetry
from services.common.tls import client_tls
from services.common.server import DEFAULT_PORTS, MB, channel_options

UNARY_TIMEOUT_S = 5.0
# gRPC's default reconnect backoff grows to 120 s: a restarted VAD/STT would sit unreached for
# minutes. Cap it so a reopened stream finds the new process within ~2 s.
RECONNECT_BACKOFF_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
]

_SERVICE_CONFIG = json.dumps({
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{
        "name": [{}],
        "retryPolicy": {
            "maxAttempts": 3,
            "initialBackoff": "0.1s",
            "maxBackoff": "1s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }],
})


def service_target(service: str) -> str:
    """Address of one of our services: <SERVICE>_ADDR (e.g. dns:///vad:50052 or
    ipv4:127.0.0.1:50052,127.0.0.1:50062 for several instances) or loopback default."""
    return os.environ.get(f"{service.upper()}_ADDR", f"127.0.0.1:{DEFAULT_PORTS[service]}")


def create_channel(target: str, *, max_message_bytes: int = 4 * MB, keepalive_s: float = 30.0) -> grpc.aio.Channel:
    """TLS (and mutual TLS) when GRPC_TLS_CA is set (see services.common.tls), else plaintext."""
    tls = client_tls()
    options = channel_options(max_message_bytes, keepalive_s) + [
        ("grpc.service_config", _SERVICE_CONFIG),
        ("grpc.enable_retries", 1),
        *RECONNECT_BACKOFF_OPTIONS,
        *tls.options(),
    ]
    creds = tls.credentials()
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, options=options, interceptors=telemetry.client_interceptors())
    return grpc.aio.insecure_channel(target, options=options, interceptors=telemetry.client_interceptors())


def create_sync_channel(target: str) -> grpc.Channel:
    """A blocking channel with the same TLS settings (readiness checks, CLIs)."""
    tls = client_tls()
    creds = tls.credentials()
    if creds is not None:
        return grpc.secure_channel(target, creds, options=tls.options())
    return grpc.insecure_channel(target)


def wait_for_health(address: str, service: str = "", timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    """Block until `address` reports SERVING (used by `make run`'s readiness check and the tests)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with create_sync_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before serving")
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError as exc:
                last = exc
            time.sleep(0.05)
    raise TimeoutError(f"{address} not SERVING after {timeout}s: {last}")
