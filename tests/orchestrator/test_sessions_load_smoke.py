"""A smoke-sized run of the `sessions` load mode on the echo fakes (the benchmark is `make bench`)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.fakes.ai_services import speech_end
from tests.support.procs import ROOT


def test_speech_end_is_the_last_voiced_chunk():
    quiet, loud = np.zeros(320, dtype=np.int16), np.full(320, 2000, dtype=np.int16)
    clip = np.concatenate([quiet, loud, quiet, loud, quiet, quiet])
    assert speech_end(clip, 320) == 4 * 320
    assert speech_end(np.zeros(3200, dtype=np.int16), 320) == 0


def test_sessions_mode_smoke():
    proc = subprocess.run([sys.executable, "-m", "tests.load.orchestrator", "sessions", "--sessions", "2",
                           "--seconds", "4", "--stack", "echo", "--chunk-ms", "20", "--min-silence-ms", "400",
                           "--ramp-s", "0.2", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    s = json.loads(proc.stdout.strip().splitlines()[-1])
    assert s["errors"] == 0 and s["stack"] == "echo"
    assert s["turns"] >= 2 and s.get("no_reply", 0) == 0
    # the reply cannot come before the VAD's silence has passed, and echo fakes add nothing to it
    assert 400 <= s["eos_to_first_audio_ms"]["p50"] < 400 + 1000
    assert s["server"]["rss_mb"] > 0 and "cpu_pct_per_session" in s
