"""A smoke-sized run of the load driver (the benchmark itself is `make bench`, not a test)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.orchestrator.conftest import API_KEY
from tests.support.procs import ROOT


@pytest.mark.parametrize("mode, extra", [("api", []), ("watch", ["--rate", "50"])])
def test_load_driver_smoke(orchestrator, mode: str, extra: list[str]):
    proc = subprocess.run([sys.executable, "-m", "tests.load.orchestrator", mode, "--streams", "3", "--seconds", "1.5",
                           "--quiet", "--target", orchestrator.address, "--api-key", API_KEY, *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0
    if mode == "api":
        assert summary["api_calls_per_s"] > 0 and summary["interviews"] > 0
    else:
        assert summary["events_produced"] > 0 and summary["delivered_fraction"] == 1.0
