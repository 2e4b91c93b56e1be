"""A smoke-sized run of the load driver (the benchmark itself is `make bench`, not a test)."""
import json
import subprocess
import sys


def test_load_driver_runs_streams_and_reports_latency_cpu_and_the_baseline_ratio():
    out = subprocess.run([sys.executable, "-m", "tests.load.vad", "--streams", "4", "--seconds", "3", "--quiet",
                          "--baseline-streams", "2"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["errors"] == 0 and summary["streams"] == 4
    assert 4 * 25 <= summary["windows_per_s"] <= 4 * 35  # real time: 31.25 windows/s per stream
    assert summary["events"] > 0 and summary["event_latency_ms"]["count"] > 0
    assert summary["server"]["cpu_pct"] > 0
    assert summary["cpu_ratio_both_sides_vs_per_session"] > 0
