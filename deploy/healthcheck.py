"""One-shot readiness check for container healthchecks: exit 0 if the service is serving, else 1.

    python -m deploy.healthcheck grpc PORT                 # grpc.health.v1 Check on 127.0.0.1:PORT
    python -m deploy.healthcheck http URL [--insecure]     # GET URL answers 200 (media's /healthz)

Kubernetes probes gRPC natively; Docker Compose has no gRPC probe, so compose.yaml runs this
inside each image (it needs only grpcio-health-checking, a base dependency, and the stdlib).
"""
from __future__ import annotations

import argparse
import ssl
import sys
import urllib.request


def grpc_serving(port: int, timeout: float) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            print(f"127.0.0.1:{port}: {exc.code().name}", file=sys.stderr)
            return False
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"127.0.0.1:{port}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}", file=sys.stderr)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def http_ok(url: str, timeout: float, insecure: bool) -> bool:
    # --insecure: the container checks itself on 127.0.0.1, where the public certificate's name never matches.
    context = None
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status == 200
    except OSError as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.healthcheck")
    sub = parser.add_subparsers(dest="kind", required=True)
    g = sub.add_parser("grpc", help="grpc.health.v1 Check on 127.0.0.1:PORT")
    g.add_argument("port", type=int)
    h = sub.add_parser("http", help="GET URL answers 200")
    h.add_argument("url")
    h.add_argument("--insecure", action="store_true", help="do not verify the TLS certificate")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.kind == "grpc":
        return 0 if grpc_serving(args.port, args.timeout) else 1
    return 0 if http_ok(args.url, args.timeout, args.insecure) else 1


if __name__ == "__main__":
    raise SystemExit(main())
