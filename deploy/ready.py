"""Waits until every started service reports SERVING, then prints the endpoints and the URL to open."""
from __future__ import annotations

import os
import sys
import time
import urllib.request

from services.common.channels import service_target, wait_for_health
from services.common.metrics import DEFAULT_METRICS_PORTS


def wait_for_http(url: str, timeout: float = 120.0) -> None:
    """media is HTTP (aiohttp), not gRPC: poll its /healthz."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not healthy after {timeout}s")
        time.sleep(0.1)


def media_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('MEDIA_PORT', '8080')}"


def metrics_url(service: str) -> str:
    port = int(os.environ.get(f"{service.upper()}_METRICS_PORT", "0") or 0)
    if port < 0:
        return "off"
    return f"http://127.0.0.1:{port or DEFAULT_METRICS_PORTS.get(service, 0)}/metrics"


def demo_link() -> str:
    """Create a demo interview through the API (with the dev key the orchestrator wrote) and
    return its candidate link; "" (with the reason) if that is not possible."""
    import asyncio
    from pathlib import Path

    key = os.environ.get("ORCHESTRATOR_API_KEY", "")
    key_file = Path(os.environ.get("ORCHESTRATOR_DEV_KEY_FILE", ".run/orchestrator-api-key"))
    if not key and key_file.exists():
        key = key_file.read_text().strip()
    if not key:
        print("  (no dev API key found: set ORCHESTRATOR_API_KEY to have a demo link printed here)")
        return ""
    from services.orchestrator.api.client import InterviewsClient

    async def create() -> str:
        async with InterviewsClient(service_target("orchestrator"), key) as api:
            return (await api.create(template="demo", candidate_name="Demo candidate")).join_url

    try:
        return asyncio.run(create())
    except Exception as exc:  # the suite still runs; say why there is no link
        print(f"  (could not create a demo interview: {exc})")
        return ""


def main(services: list[str]) -> int:
    start = time.monotonic()
    for svc in services:
        if svc == "media":
            wait_for_http(f"{media_url()}/healthz")
        else:
            wait_for_health(service_target(svc), timeout=120)
    took = time.monotonic() - start
    print(f"all {len(services)} services SERVING after {took:.1f}s:")
    for svc in services:
        if svc != "media":
            print(f"  {svc:<13} grpc://{service_target(svc)}   metrics {metrics_url(svc)}")
        else:
            print(f"  {svc:<13} {media_url()}/  (candidate page, WebRTC)   metrics {metrics_url(svc)}")
    if "media" in services:
        link = demo_link()
        if link:
            print(f"\n  Open this link in a browser (a demo interview, valid 24 h):\n    {link}")
        print("\n  More interviews: python -m services.orchestrator.cli create --template demo"
              "   # dev API key: .run/orchestrator-api-key")
    else:
        print("\n  The candidate web page arrives with services/media (not built yet). Meanwhile, drive the API:")
        print("    python -m services.orchestrator.cli create --template demo   # dev API key: .run/orchestrator-api-key")
        print("    grpcurl -plaintext 127.0.0.1:50051 list")
    sys.stdout.flush()
    # Stay alive: honcho stops everything when any process exits.
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
