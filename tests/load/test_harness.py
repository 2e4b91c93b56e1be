"""Smoke-sized checks of the shared load harness (the real drivers have their own smoke tests)."""
import asyncio
import json
import os
import time

from tests.load.harness import Histogram, ProcSampler, emit, load_recordings, run_load


def test_histogram_percentiles():
    h = Histogram()
    for v in range(1, 101):
        h.add(float(v))
    s = h.summary()
    assert s["count"] == 100 and 50 <= s["p50"] <= 51 and 98 <= s["p99"] <= 100 and s["max"] == 100


async def test_proc_sampler_sees_cpu_burn():
    sampler = ProcSampler(os.getpid(), interval_s=0.1)
    sampler.start()
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        sum(i * i for i in range(10_000))
        await asyncio.sleep(0)
    s = await sampler.stop()
    assert s["cpu_pct"] > 30 and s["rss_mb"] > 10


async def test_run_load_paces_real_recordings_in_real_time(capsys):
    recs = load_recordings()
    assert all(r.rate == 16000 and r.seconds > 20 for r in recs)

    async def stream(i, run):
        async for offset, pcm in run.paced(run.recording(i), chunk_ms=32, start_s=i * 1.7):
            run.count("chunks")
            run.hist("chunk_bytes").add(len(pcm))

    summary = await run_load(stream, streams=4, seconds=1.0, pid=os.getpid(), progress=False)
    # ~31 chunks per stream-second, paced: not a burst
    assert 4 * 25 <= summary["chunks"] <= 4 * 35
    assert summary["chunk_bytes"]["p50"] == 1024 and summary["errors"] == 0 and "cpu_pct" in summary["server"]
    emit(summary)
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["streams"] == 4
