"""A smoke-sized run of the media load driver (tests/load/media.py): 2 peers for a few seconds
against a real media process and the aiortc echo baseline. Checks the driver works, not the numbers."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from services.media.client import FRAME, RATE
from tests.load.media_clients import round_trips_ms
from tests.support.procs import ROOT


def test_round_trip_is_found_by_cross_correlation() -> None:
    """A known 73 ms delay of real-speech-like noise is measured as 73 ms (± one 8 kHz sample)."""
    rng = np.random.default_rng(1)
    sent = (rng.standard_normal(RATE * 4) * 3000).astype(np.int16)
    sent_at = [100.0 + k * FRAME / RATE for k in range(len(sent) // FRAME)]
    delay = int(0.073 * RATE) // FRAME * FRAME + 480  # a delay that is not a whole frame
    heard_sig = np.concatenate([np.zeros(delay, np.int16), sent])[:len(sent)]
    heard = [heard_sig[i:i + FRAME] for i in range(0, len(heard_sig), FRAME)]
    heard_at = [100.0 + k * FRAME / RATE for k in range(len(heard))]
    lat, unmatched = round_trips_ms(sent, sent_at, heard, heard_at, since=101.0, until=1e12)
    assert lat and unmatched == 0
    assert np.allclose(lat, 1000 * delay / RATE, atol=0.2)


def test_driver_smoke_two_peers() -> None:
    out = subprocess.run([sys.executable, "-m", "tests.load.media", "--peers", "2", "--seconds", "3", "--quiet"],
                         cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["peers"] == 2 and summary["errors"] == 0, summary
    for side in ("media", "baseline"):
        s = summary[side]
        assert s["frames_heard"] > 0.8 * s["frames_sent"] > 0, s  # audio went both ways for both peers
        assert s["cpu_pct"] > 0 and s["rss_mb"] > 0, s
    assert summary["media"]["rtt_ms"]["count"] > 0, summary
    assert summary["echo_fake_hold_ms"]["count"] > 0
    assert summary["cpu_ratio_vs_aiortc_echo"] > 0
