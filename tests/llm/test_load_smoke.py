"""A smoke-sized run of the load driver (the benchmark itself is `make bench`, not a test)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.procs import ROOT


@pytest.mark.parametrize("provider", ["gemini", "openai"])
def test_load_driver_prints_one_json_summary_last(provider):
    out = subprocess.run([sys.executable, "-m", "tests.load.llm", "--concurrency", "2", "--requests", "10",
                          "--first-delay-ms", "0", "--quiet", "--provider", provider], cwd=ROOT, capture_output=True, text=True, timeout=90,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OTEL_SDK_DISABLED": "true"})
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0 and summary["requests_per_path"] == 10
    assert summary["provider"] == provider
    for path in ("sdk_direct", f"service_{provider}", "service_scripted"):
        assert summary[path]["requests_per_s"] > 0 and summary[path]["ttft_ms"]["p50"] > 0
    assert "overhead_ttft_p50_ms" in summary and summary["server"]["rss_mb"] > 0
