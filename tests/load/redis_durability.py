"""`python -m tests.load.redis_durability`: what `appendfsync always` costs against `everysec` at
the product's write rate.

The write is the transcript append's shape (the store's Lua script: allocate the next gapless
sequence number and XADD the entry with it, refresh the TTL, all in one EVALSHA; ~400-byte
entries). `--interviews N` interviews each write `--per-s` entries a second (a few: utterances,
agent turns, turn metrics), paced, concurrently. The two settings alternate on one redis-server
(CONFIG SET appendfsync), A/B/A/B, so the shared machine's noise hits both alike; the data
directory is on the same disk as `make run`'s (.run/). Then each setting's ceiling: unpaced
writers for a few seconds. Prints a JSON line per round and a summary last.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from tests.support.procs import ROOT, RedisServer

# Same effect as the store's append: INCR the sequence, XADD with it, keep the key alive.
APPEND = """
local seq = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], '*', 'seq', seq, 'entry', ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return seq
"""
ENTRY = os.urandom(200).hex()  # ~400 bytes, like a transcript entry of a sentence or two


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def paced_round(r: aioredis.Redis, sha: str, interviews: int, per_s: float, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def interview(i: int) -> None:
        interval = 1.0 / per_s
        t = time.monotonic() + (i % 97) / 97 * interval  # spread over the interval
        while t < stop:
            await asyncio.sleep(max(0.0, t - time.monotonic()))
            start = time.perf_counter()
            await r.evalsha(sha, 2, f"bench:{i}:seq", f"bench:{i}:events", ENTRY, 3_600_000)
            latencies.append((time.perf_counter() - start) * 1000)
            t += interval

    began = time.monotonic()
    await asyncio.gather(*(interview(i) for i in range(interviews)))
    elapsed = time.monotonic() - began
    return {"writes": len(latencies), "writes_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(pct(latencies, 0.5), 3), "p99_ms": round(pct(latencies, 0.99), 3),
            "max_ms": round(max(latencies), 3) if latencies else None}


async def ceiling_round(r: aioredis.Redis, sha: str, writers: int, seconds: float) -> dict[str, Any]:
    count = 0
    stop = time.monotonic() + seconds

    async def writer(i: int) -> None:
        nonlocal count
        while time.monotonic() < stop:
            await r.evalsha(sha, 2, f"ceil:{i}:seq", f"ceil:{i}:events", ENTRY, 3_600_000)
            count += 1

    began = time.monotonic()
    await asyncio.gather(*(writer(i) for i in range(writers)))
    return {"writes_per_s": round(count / (time.monotonic() - began), 1)}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-redis-", dir=args.data_dir))
    try:
        with RedisServer(data_dir=str(data_dir)) as server:
            assert server.proc is not None
            r = aioredis.Redis.from_url(server.url, max_connections=max(64, args.interviews))
            sha = await r.script_load(APPEND)
            rounds: dict[str, dict[int, list[dict[str, Any]]]] = {"always": {}, "everysec": {}}
            for level in args.interviews_levels:
                for rep in range(args.repeats):
                    for mode in ("always", "everysec") if rep % 2 == 0 else ("everysec", "always"):
                        await r.config_set("appendfsync", mode)
                        cpu0 = cpu_seconds(server.proc.pid)
                        t0 = time.monotonic()
                        result = await paced_round(r, sha, level, args.per_s, args.seconds)
                        result["redis_cpu_pct"] = round(100 * (cpu_seconds(server.proc.pid) - cpu0)
                                                        / (time.monotonic() - t0), 1)
                        result.update(mode=mode, interviews=level, rep=rep)
                        print(json.dumps(result), flush=True)
                        rounds[mode].setdefault(level, []).append(result)
            ceilings: dict[str, list[float]] = {"always": [], "everysec": []}
            for rep in range(args.repeats):
                for mode in ("always", "everysec") if rep % 2 == 0 else ("everysec", "always"):
                    await r.config_set("appendfsync", mode)
                    c = await ceiling_round(r, sha, args.ceiling_writers, args.ceiling_seconds)
                    print(json.dumps({"ceiling": mode, **c}), flush=True)
                    ceilings[mode].append(c["writes_per_s"])
            await r.aclose()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    summary: dict[str, Any] = {"per_interview_writes_per_s": args.per_s, "seconds_per_round": args.seconds,
                               "repeats": args.repeats, "levels": {}}
    for level in args.interviews_levels:
        row = {}
        for mode in ("always", "everysec"):
            rs = rounds[mode][level]
            row[mode] = {k: round(statistics.median(r[k] for r in rs), 3)
                         for k in ("writes_per_s", "p50_ms", "p99_ms", "max_ms", "redis_cpu_pct")}
        row["p50_ratio_always_over_everysec"] = round(row["always"]["p50_ms"] / row["everysec"]["p50_ms"], 2)
        row["p99_ratio_always_over_everysec"] = round(row["always"]["p99_ms"] / row["everysec"]["p99_ms"], 2)
        summary["levels"][level] = row
    summary["ceiling_writes_per_s"] = {m: statistics.median(v) for m, v in ceilings.items()}
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load.redis_durability", description=__doc__.split("\n")[0])
    p.add_argument("--interviews-levels", type=lambda s: [int(x) for x in s.split(",")], default=[20, 100, 300])
    p.add_argument("--interviews", type=int, default=300, help="connection pool size hint")
    p.add_argument("--per-s", type=float, default=3.0, help="transcript writes per second per interview")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--repeats", type=int, default=2, help="A/B pairs per level (order alternates)")
    p.add_argument("--ceiling-writers", type=int, default=32)
    p.add_argument("--ceiling-seconds", type=float, default=4.0)
    p.add_argument("--data-dir", default=str(ROOT / ".run"), help="parent of the AOF directory (a real disk)")
    args = p.parse_args(argv)
    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
