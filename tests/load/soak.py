"""`make soak` / `python -m tests.load.soak --candidates N --seconds S`: the leak and loss soak.

N scripted candidates talk to the orchestrator through Session.Connect for S seconds (the media
side of tests/load/orchestrator_sessions.py: real-time 16 kHz audio, instant playback with marks),
against the real VAD process and the fixed-latency fakes for STT/LLM/TTS, a real redis-server and
the real orchestrator process. Each candidate speaks a recording, waits for the reply, pauses and
speaks again; when its interview ends (the plan runs out) it starts a new one, so sessions churn.

A warm-up phase at the same concurrency runs first; its end (every session closed) is the idle
baseline. Every `--sample-s` the driver reads from /proc the RSS, threads and open file descriptors of
every process, and each service's asyncio task count from its /metrics. At the end, with every
session closed, it checks:
- RSS growth of every service < 5 % between the first and the last minute of the soak (after
  its ramp-up);
- tasks, threads and file descriptors back to their pre-run idle values (small slack);
- no reply lost: every utterance got a reply, and the transcripts (GetTranscript) hold every
  candidate utterance the orchestrator acknowledged with a reply.
One JSON line is printed last (docs/reliability.md records the numbers); exit 1 if a check fails.
SOAK_ORCH_ENV='{"VAR": "value"}' adds environment variables to the orchestrator (e.g. a probe).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interview.v1 import common_pb2
from services.orchestrator.api.client import InterviewsClient
from tests.fakes.ai_services import speech_end
from tests.load.harness import load_recordings
from tests.load.orchestrator_sessions import CLIPS, FIXED, Candidate, Clip, Ticker, fakes_process
from tests.support.procs import RedisServer, ServiceProcess

RATE = 16000
CHUNK = 512  # 32 ms, the product's default chunk
SLACK_TASKS, SLACK_THREADS, SLACK_FDS = 2, 1, 3


def proc_stats(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return {"rss_mb": int(values["VmRSS"].split()[0]) / 1024, "threads": int(values["Threads"]),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def scrape_tasks(metrics_port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            for line in reply.read().decode().splitlines():
                if line.startswith("interviewer_asyncio_tasks{"):
                    return float(line.rsplit(" ", 1)[1])
    except OSError:
        return None
    return None


@dataclass
class Tally:
    utterances: int = 0
    replies: int = 0
    no_reply: int = 0
    late_replies: int = 0  # after more than min silence + 10 s, within 30 s more
    sessions: int = 0
    sessions_ended_by_plan: int = 0
    interviews: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def candidate(i: int, address: str, api: InterviewsClient, ticker: Ticker, clips: list[Clip],
                    deadline: float, tally: Tally, min_silence_s: float) -> None:
    k = i
    while time.monotonic() < deadline:
        created = await api.create(template="demo", candidate_name=f"soak-{i}")
        tally.interviews.append(created.interview.id)
        tally.sessions += 1
        c = Candidate(address, created.interview.id, created.join_token, CHUNK)
        ticker.candidates.add(c)
        try:
            gid, _ = await asyncio.wait_for(c.generations.get(), 20)  # the greeting
            await c.finished(gid, 60)
            while time.monotonic() < deadline and not c.reader.done():
                await asyncio.sleep(0.5 + 0.1 * (k % 5))
                while not c.generations.empty():
                    c.generations.get_nowait()
                await c.speak(clips[k % len(clips)])
                k += 1
                tally.utterances += 1
                try:
                    gid, _ = await asyncio.wait_for(c.generations.get(), min_silence_s + 10)
                except asyncio.TimeoutError:
                    if c.reader.done():  # the interview ended (the plan ran out): not a lost reply
                        tally.utterances -= 1
                        break
                    try:  # late (a stalled machine) or lost? wait longer before calling it lost
                        gid, _ = await asyncio.wait_for(c.generations.get(), 30)
                        tally.late_replies += 1
                    except asyncio.TimeoutError:
                        tally.no_reply += 1
                        continue
                tally.replies += 1
                await c.finished(gid, 60)
            if c.reader.done():
                tally.sessions_ended_by_plan += 1
        except Exception as exc:  # noqa: BLE001 — counted, reported
            tally.errors.append(f"candidate {i}: {type(exc).__name__}: {exc}")
        finally:
            ticker.candidates.discard(c)
            await c.close()


async def transcript_counts(api: InterviewsClient, interviews: list[str]) -> tuple[dict[str, int], int]:
    """Entries by role over every interview, and how many interviews have a gap in their sequence."""
    roles: dict[str, int] = {}
    gaps = 0
    for iid in interviews:
        seqs = []
        async for entry in api.transcript(iid):
            name = common_pb2.Role.Name(entry.role)
            roles[name] = roles.get(name, 0) + 1
            seqs.append(entry.sequence)
        gaps += seqs != list(range(1, len(seqs) + 1))
    return roles, gaps


async def run(args: argparse.Namespace) -> dict[str, Any]:
    key = "soak-" + secrets.token_hex(16)
    clips = [Clip(r.samples, speech_end(r.samples, CHUNK)) for r in load_recordings(RATE, CLIPS)]
    with RedisServer() as redis_server, ServiceProcess("vad", env={"LOG_LEVEL": "WARNING"}) as vad, \
            fakes_process(FIXED) as (fakes, fakes_pid):
        env = {"REDIS_URL": redis_server.url, "ORCHESTRATOR_API_KEYS": f"soak:{key}", "LOG_LEVEL": "WARNING",
               "ORCHESTRATOR_API_RATE_PER_S": "0", "ORCHESTRATOR_API_WATCH_RATE_PER_S": "0",  # capacity, not limits
               "ORCHESTRATOR_JOIN_TOKEN_SECRET": secrets.token_hex(32), "VAD_ADDR": vad.address,
               **{f"{n}_ADDR": fakes for n in ("STT", "LLM", "TTS")}, **json.loads(os.environ.get("SOAK_ORCH_ENV", "{}"))}
        with ServiceProcess("orchestrator", env=env) as orch:
            procs = {"orchestrator": (orch.pid, orch.metrics_port), "vad": (vad.pid, vad.metrics_port),
                     "redis": (redis_server.proc.pid, None), "ai-fakes": (fakes_pid, None)}
            samples: list[dict[str, Any]] = []

            def sample(label: str) -> dict[str, Any]:
                row: dict[str, Any] = {"t": round(time.monotonic() - t0, 1), "label": label}
                for name, (pid, mport) in procs.items():
                    row[name] = proc_stats(pid)
                    if mport:
                        row[name]["tasks"] = scrape_tasks(mport)
                samples.append(row)
                return row

            t0 = time.monotonic()
            tally = Tally()
            ticker = Ticker(CHUNK)
            ticking = asyncio.create_task(ticker.run())
            async with InterviewsClient(orch.address, key) as api:
                async def phase(label: str, seconds: float, counted: Tally) -> None:
                    """N candidates for `seconds`, sampled every sample_s; then all close and settle."""
                    deadline = time.monotonic() + seconds

                    async def sampler() -> None:
                        while True:
                            await asyncio.sleep(args.sample_s)
                            row = sample(label)
                            if args.progress:
                                print(json.dumps({"phase": label, "t": row["t"], "utterances": counted.utterances,
                                                  "replies": counted.replies, "no_reply": counted.no_reply,
                                                  "sessions": counted.sessions,
                                                  **{f"{n}_rss_mb": round(row[n]["rss_mb"], 1) for n in procs},
                                                  "orchestrator_tasks": row["orchestrator"].get("tasks")}),
                                      file=sys.stderr, flush=True)

                    sampling = asyncio.create_task(sampler())
                    tasks = []
                    for i in range(args.candidates):  # joins spread out: candidates out of step
                        tasks.append(asyncio.create_task(
                            candidate(i, orch.address, api, ticker, clips, deadline, counted, 1.2)))
                        await asyncio.sleep(0.5)
                    await asyncio.gather(*tasks, return_exceptions=True)
                    sampling.cancel()
                    await asyncio.gather(sampling, return_exceptions=True)
                    await asyncio.sleep(args.settle_s)  # sessions closed: leases, timers, streams released

                # Warm-up at the same concurrency: pools, channels and caches reach their size, so
                # the idle sample after it is the baseline the end of the soak must return to.
                warm = Tally()
                await phase("warm-up", args.warmup_s, warm)
                idle_before = sample("idle-before")
                started = time.monotonic() - t0
                await phase("run", args.seconds, tally)
                idle_after = sample("idle-after")
                roles, gapped = await transcript_counts(api, tally.interviews)
                tally.errors.extend(warm.errors)
                tally.no_reply += warm.no_reply
            ticking.cancel()
            await asyncio.gather(ticking, return_exceptions=True)
            pacing_late = ticker.late

    # ---- verdicts ----
    ramp = args.candidates * 0.5 + 20  # joins spread 0.5 s apart, then greetings
    run_rows = [r for r in samples if r["label"] == "run" and r["t"] >= started + ramp]
    window = max(1, int(60 / args.sample_s))
    checks: dict[str, Any] = {}
    for name in procs:
        if len(run_rows) >= 2 * window:
            first = statistics.median(r[name]["rss_mb"] for r in run_rows[:window])
            last = statistics.median(r[name]["rss_mb"] for r in run_rows[-window:])
            checks[f"{name}_rss_growth_pct"] = round(100 * (last - first) / first, 2)
        for metric, slack in (("threads", SLACK_THREADS), ("fds", SLACK_FDS), ("tasks", SLACK_TASKS)):
            before, after = idle_before[name].get(metric), idle_after[name].get(metric)
            if before is not None and after is not None:
                checks[f"{name}_{metric}_idle_before_after"] = [before, after]
    failures = []
    for k, v in checks.items():
        if k.endswith("_rss_growth_pct") and not k.startswith(("redis", "ai-fakes")) and v >= 5:
            failures.append(f"{k} = {v} (limit 5)")
        if k.endswith("_idle_before_after") and not k.startswith(("redis", "ai-fakes")):
            metric = k.split("_")[-4]
            slack = {"threads": SLACK_THREADS, "fds": SLACK_FDS, "tasks": SLACK_TASKS}[metric]
            if v[1] > v[0] + slack:
                failures.append(f"{k} = {v} (slack {slack})")
    if tally.no_reply:
        failures.append(f"{tally.no_reply} utterances got no reply")
    if roles.get("ROLE_USER", 0) < tally.replies:
        failures.append(f"transcripts hold {roles.get('ROLE_USER', 0)} candidate entries for {tally.replies} answered "
                        "utterances")
    if gapped:
        failures.append(f"{gapped} transcripts have a gap in their sequence numbers")
    if tally.errors:
        failures.append(f"{len(tally.errors)} candidate errors: {tally.errors[:3]}")
    if len(run_rows) < 2 * window:
        failures.append(f"run too short for the RSS check ({len(run_rows)} samples after warm-up, need {2 * window})")
    return {"candidates": args.candidates, "seconds": args.seconds, "warmup_s": args.warmup_s,
            "utterances": tally.utterances, "replies": tally.replies, "no_reply": tally.no_reply,
            "late_replies": tally.late_replies,
            "sessions": tally.sessions, "sessions_ended_by_plan": tally.sessions_ended_by_plan,
            "transcript_entries_by_role": roles, "transcripts_with_gaps": gapped, "pacing_late": pacing_late, "checks": checks,
            "rss_mb": {n: [round(r[n]["rss_mb"], 1) for r in samples] for n in procs},
            "failures": failures, "ok": not failures}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load.soak", description=__doc__.split("\n")[0])
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--seconds", type=float, default=600)
    p.add_argument("--warmup-s", type=float, default=90,
                   help="a warm-up phase at the same concurrency before the soak (its idle end is the baseline)")
    p.add_argument("--sample-s", type=float, default=10)
    p.add_argument("--settle-s", type=float, default=15, help="after the last session closes, before the idle sample")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    args = p.parse_args(argv)
    summary = asyncio.run(run(args))
    print(json.dumps(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
