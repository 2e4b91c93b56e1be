"""The shared load-test harness every service's driver plugs into.

A driver supplies one coroutine per stream; the harness runs N of them concurrently for S
seconds, feeds them real recordings paced in real time, collects latency histograms, samples the
service process's CPU and RSS from /proc, prints a progress line to stderr while it runs, and
prints one JSON summary line last on stdout.

    async def one_stream(i: int, run: LoadRun) -> None:
        rec = run.recording(i)
        async for offset, pcm in run.paced(rec, chunk_ms=32):
            ...
            run.hist("event_latency_ms").add(ms)
            run.count("windows")

    summary = asyncio.run(run_load(one_stream, streams=10, seconds=30, pid=service.pid))
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from services.common.audio import read_wav

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
# Recordings with enough speech to drive a realistic load (see tests/fixtures/speech/README.md).
DEFAULT_RECORDINGS = ("phone_call_2spk_16k.wav", "lecture_60s_16k.wav")


class Histogram:
    """Exact percentiles over all samples (a load run keeps at most a few million floats)."""

    def __init__(self) -> None:
        self._values: list[float] = []

    def add(self, value: float) -> None:
        self._values.append(value)

    def __len__(self) -> int:
        return len(self._values)

    def percentile(self, p: float) -> float:
        if not self._values:
            return math.nan
        return float(np.percentile(np.asarray(self._values), p))

    def summary(self) -> dict[str, float]:
        if not self._values:
            return {"count": 0}
        arr = np.asarray(self._values)
        return {"count": int(arr.size), "p50": round(float(np.percentile(arr, 50)), 3),
                "p95": round(float(np.percentile(arr, 95)), 3), "p99": round(float(np.percentile(arr, 99)), 3),
                "max": round(float(arr.max()), 3), "mean": round(float(arr.mean()), 3)}


class ProcSampler:
    """CPU % (of one core) and RSS of a process, read from /proc at a fixed interval."""

    def __init__(self, pid: int, interval_s: float = 0.5):
        self.pid = pid
        self.interval_s = interval_s
        self._ticks = os.sysconf("SC_CLK_TCK")
        self.cpu_samples: list[float] = []
        self.rss_samples: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._start: tuple[float, float] | None = None
        self._end: tuple[float, float] | None = None

    def _cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
        return (utime + stime) / self._ticks

    def _rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return math.nan

    def snapshot(self) -> tuple[float, float]:
        return time.monotonic(), self._cpu_seconds()

    async def _loop(self) -> None:
        prev = self.snapshot()
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                now = self.snapshot()
                self.rss_samples.append(self._rss_mb())
            except (FileNotFoundError, ProcessLookupError):
                return
            self.cpu_samples.append(100.0 * (now[1] - prev[1]) / max(1e-9, now[0] - prev[0]))
            prev = now

    def start(self) -> None:
        self._start = self.snapshot()
        self.rss_samples.append(self._rss_mb())
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> dict[str, float]:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        try:
            self._end = self.snapshot()
            self.rss_samples.append(self._rss_mb())
        except (FileNotFoundError, ProcessLookupError):
            self._end = None
        return self.summary()

    def summary(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self._start and self._end:
            out["cpu_pct"] = round(100.0 * (self._end[1] - self._start[1]) / max(1e-9, self._end[0] - self._start[0]), 2)
        if self.cpu_samples:
            out["cpu_pct_max"] = round(max(self.cpu_samples), 2)
        if self.rss_samples:
            out["rss_mb"] = round(self.rss_samples[-1], 2)
            out["rss_mb_max"] = round(max(self.rss_samples), 2)
        return out


@dataclass
class Recording:
    name: str
    samples: np.ndarray  # int16 mono
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate


def load_recordings(rate: int = 16000, names: tuple[str, ...] = DEFAULT_RECORDINGS) -> list[Recording]:
    return [Recording(n, read_wav(FIXTURES / n, rate)[0], rate) for n in names]


@dataclass
class LoadRun:
    """State shared by a run's streams: recordings, histograms, counters, the deadline."""

    seconds: float
    recordings: list[Recording]
    hists: dict[str, Histogram] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        return self.started + self.seconds

    def done(self) -> bool:
        return time.monotonic() >= self.deadline

    def hist(self, name: str) -> Histogram:
        return self.hists.setdefault(name, Histogram())

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    def recording(self, i: int) -> Recording:
        return self.recordings[i % len(self.recordings)]

    async def paced(self, rec: Recording, chunk_ms: float = 32, start_s: float = 0.0,
                    loop: bool = True) -> AsyncIterator[tuple[int, bytes]]:
        """(offset_samples, pcm) chunks released in real time until the run's deadline.

        `start_s` staggers streams across the recording so N streams do not speak in unison.
        Late wake-ups are counted ("pacing_late") so an overloaded driver is visible.
        """
        size = int(rec.rate * chunk_ms / 1000)
        pos = int(start_s * rec.rate) % max(1, len(rec.samples))
        offset = 0
        t0 = time.monotonic()
        while not self.done():
            if pos + size > len(rec.samples):
                if not loop:
                    return
                pos = 0
            yield offset, rec.samples[pos:pos + size].tobytes()
            pos += size
            offset += size
            due = t0 + offset / rec.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                self.count("pacing_late")


def _progress(run: LoadRun, sampler: ProcSampler | None, streams: int) -> str:
    elapsed = time.monotonic() - run.started
    parts = [f"t={elapsed:5.1f}s/{run.seconds:.0f}s", f"streams={streams}"]
    parts += [f"{k}={v}" for k, v in sorted(run.counters.items())]
    for name, h in sorted(run.hists.items()):
        if len(h):
            parts.append(f"{name}.p50={h.percentile(50):.1f}")
    if sampler and sampler.cpu_samples:
        parts.append(f"cpu={sampler.cpu_samples[-1]:.0f}%")
    if run.errors:
        parts.append(f"errors={len(run.errors)}")
    return " ".join(parts)


async def run_load(stream: Callable[[int, LoadRun], Awaitable[None]], *, streams: int, seconds: float,
                   pid: int | None = None, recordings: list[Recording] | None = None,
                   progress: bool = True, ramp_s: float = 0.0) -> dict[str, Any]:
    """Run `streams` copies of `stream` concurrently for `seconds`; return the summary dict."""
    run = LoadRun(seconds=seconds, recordings=recordings or load_recordings())
    sampler = ProcSampler(pid) if pid else None
    if sampler:
        sampler.start()

    async def guarded(i: int) -> None:
        if ramp_s:
            await asyncio.sleep(ramp_s * i / max(1, streams))
        try:
            await stream(i, run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a failing stream is a result, not a crash of the run
            run.errors.append(f"stream {i}: {type(exc).__name__}: {exc}")

    async def reporter() -> None:
        while True:
            await asyncio.sleep(1.0)
            print("\r" + _progress(run, sampler, streams), end="", file=sys.stderr, flush=True)

    rep = asyncio.create_task(reporter()) if progress else None
    tasks = [asyncio.create_task(guarded(i)) for i in range(streams)]
    try:
        done, pending = await asyncio.wait(tasks, timeout=seconds + 30)
        for t in pending:
            t.cancel()
            run.errors.append("stream did not finish within the run + 30 s")
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        if rep:
            rep.cancel()
            print(file=sys.stderr)
    elapsed = time.monotonic() - run.started
    summary: dict[str, Any] = {"streams": streams, "seconds": round(elapsed, 2)}
    summary.update({k: v for k, v in sorted(run.counters.items())})
    for name, h in sorted(run.hists.items()):
        summary[name] = h.summary()
    if sampler:
        summary["server"] = await sampler.stop()
    summary["errors"] = len(run.errors)
    if run.errors:
        summary["first_errors"] = run.errors[:3]
    return summary


def arg_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Common flags; drivers add their own."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--streams", type=int, default=10, help="concurrent streams")
    p.add_argument("--seconds", type=float, default=20.0, help="duration of the run")
    p.add_argument("--chunk-ms", type=float, default=32.0, help="audio chunk size")
    p.add_argument("--target", default="", help="address of a running service; default: start one")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    return p


def emit(summary: dict[str, Any]) -> None:
    """The one JSON summary line, printed last."""
    print(json.dumps(summary, sort_keys=False), flush=True)
