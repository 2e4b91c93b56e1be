"""Waits until every started service reports SERVING, then prints the endpoints and the URL to open."""
from __future__ import annotations

import os
import sys
import time

from services.common.channels import service_target
from tests.support.procs import wait_for_health


def main(services: list[str]) -> int:
    start = time.monotonic()
    for svc in services:
        if svc == "media":
            continue  # HTTP; checked by its own page
        wait_for_health(service_target(svc), timeout=120)
    took = time.monotonic() - start
    print(f"all {len(services)} services SERVING after {took:.1f}s:")
    for svc in services:
        if svc != "media":
            print(f"  {svc:<13} grpc://{service_target(svc)}")
    if "media" in services:
        print(f"\n  Open http://127.0.0.1:{os.environ.get('MEDIA_PORT', '8080')}/ in a browser.")
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
