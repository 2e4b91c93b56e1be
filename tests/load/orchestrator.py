"""Load driver of the orchestrator: `python -m tests.load.orchestrator MODE [options]`.

Modes:
  api    N concurrent API clients, each looping create → get → update_config → post_code_event →
         get_transcript → end; reports API calls/s and per-call latency. Baseline in the same run:
         grpc.health.v1 Check at the same concurrency (the bare gRPC round trip of this process).
  watch  M WatchEvents watchers on one interview while a producer posts code events at --rate/s;
         reports events/s delivered (sum over watchers) and delivery latency (event stamp → received).
         Baseline in the same run: the same producer with one watcher.
  sessions  N live Session.Connect sessions (a scripted candidate each, real-time audio) against
         --stack offline | fixed-latency | echo; reports end of speech -> first agent audio, the
         pipeline's overhead above VAD silence (and the fakes' latencies), orchestrator CPU / RSS per
         session against the idle orchestrator (tests/load/orchestrator_sessions.py).
         `--screen ab` (offline stack): plus the video service and a consented screen share on
         every other round of turns: end of speech -> first agent audio with and without frames
         flowing and OCR running, A/B in the same run.

Starts a private redis-server and an orchestrator process unless --target is given.
"""
from __future__ import annotations

import asyncio
import secrets
import sys
import time
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.channels import create_channel
from services.orchestrator.api.client import CodeKind, InterviewsClient, Mode
from tests.load import orchestrator_sessions as sessions
from tests.load.harness import LoadRun, arg_parser, emit, run_load
from tests.support.procs import RedisServer, ServiceProcess

MODES = ("api", "watch", "sessions")


async def _health_baseline(target: str, streams: int, seconds: float) -> dict[str, Any]:
    channels = [create_channel(target) for _ in range(streams)]

    async def one(i: int, run: LoadRun) -> None:
        stub = health_pb2_grpc.HealthStub(channels[i])
        while not run.done():
            t0 = time.perf_counter()
            await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
            run.hist("call_ms").add((time.perf_counter() - t0) * 1000)
            run.count("calls")

    try:
        return await run_load(one, streams=streams, seconds=seconds, recordings=[], progress=False)
    finally:
        await asyncio.gather(*(c.close() for c in channels))


async def _api(target: str, key: str, streams: int, seconds: float, pid: int | None, quiet: bool) -> dict[str, Any]:
    clients = [InterviewsClient(target, key) for _ in range(streams)]

    async def timed(run: LoadRun, name: str, call: Any) -> Any:
        t0 = time.perf_counter()
        result = await call
        ms = (time.perf_counter() - t0) * 1000
        run.hist("call_ms").add(ms)
        run.hist(f"{name}_ms").add(ms)
        run.count("calls")
        return result

    async def one(i: int, run: LoadRun) -> None:
        c = clients[i]
        while not run.done():
            iid = (await timed(run, "create", c.create(template="backend-engineer", candidate_name=f"load-{i}"))).interview.id
            await timed(run, "get", c.get(iid))
            await timed(run, "update_config", c.set_mode(iid, Mode.CODING))
            await timed(run, "code_event", c.post_code_event(iid, CodeKind.RUN, content="print(1)", output="1"))
            await timed(run, "transcript", _first_page(c, iid))
            await timed(run, "end", c.end(iid, "load"))
            run.count("interviews")

    try:
        baseline = await _health_baseline(target, streams, min(5.0, seconds / 3))
        summary = await run_load(one, streams=streams, seconds=seconds, pid=pid, recordings=[], progress=not quiet)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    summary["mode"] = "api"
    summary["api_calls_per_s"] = round(summary.get("calls", 0) / summary["seconds"], 1)
    summary["baseline_health_calls_per_s"] = round(baseline.get("calls", 0) / baseline["seconds"], 1)
    summary["baseline_health_call_ms"] = baseline.get("call_ms")
    summary["api_vs_health_throughput"] = round(summary["api_calls_per_s"] / max(1e-9, summary["baseline_health_calls_per_s"]), 3)
    return summary


async def _first_page(c: InterviewsClient, iid: str) -> None:
    async for _ in c.transcript(iid):
        break


async def _watch_run(target: str, key: str, watchers: int, seconds: float, rate: float, pid: int | None,
                     quiet: bool) -> dict[str, Any]:
    async with InterviewsClient(target, key) as producer_client:
        iid = (await producer_client.create(template="demo", candidate_name="watch-load")).interview.id
        clients = [InterviewsClient(target, key) for _ in range(min(watchers, 16))]  # watchers share channels
        ready = asyncio.Event()
        started = 0

        async def one(i: int, run: LoadRun) -> None:
            nonlocal started
            started += 1
            if started == watchers:
                ready.set()
            async for event in clients[i % len(clients)].watch(iid, "$"):
                if event.code_event.code.content == "end":
                    return  # the producer's last event
                if event.HasField("code_event"):
                    sent = event.time.ToNanoseconds() / 1e9
                    run.hist("delivery_ms").add((time.time() - sent) * 1000)
                    run.count("events_delivered")

        async def produce() -> None:
            await ready.wait()
            await asyncio.sleep(0.3)  # let every watch call reach its XREAD
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < seconds - 0.5:
                await producer_client.post_code_event(iid, CodeKind.EDIT, content=f"x{n}")
                n += 1
                due = t0 + n / rate
                if (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
            produced["events"] = n
            produced["seconds"] = time.monotonic() - t0
            await asyncio.sleep(0.5)  # deliveries in flight land before the end marker is counted
            await producer_client.post_code_event(iid, CodeKind.EDIT, content="end")  # wakes every watcher

        produced: dict[str, float] = {}
        producer = asyncio.create_task(produce())
        try:
            summary = await run_load(one, streams=watchers, seconds=seconds, pid=pid, recordings=[], progress=not quiet)
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)
            await asyncio.gather(*(c.close() for c in clients))
    summary["watchers"] = watchers
    summary["events_produced"] = int(produced.get("events", 0))
    window = produced.get("seconds", 0.0) or summary["seconds"]
    summary["produced_per_s"] = round(summary["events_produced"] / window, 1)
    summary["delivered_per_s"] = round(summary.get("events_delivered", 0) / window, 1)
    return summary


async def _watch(target: str, key: str, watchers: int, seconds: float, rate: float, pid: int | None,
                 quiet: bool) -> dict[str, Any]:
    baseline = await _watch_run(target, key, 1, min(5.0, seconds / 3), rate, None, True)
    summary = await _watch_run(target, key, watchers, seconds, rate, pid, quiet)
    summary["mode"] = "watch"
    summary["baseline_1_watcher"] = {k: baseline.get(k) for k in ("delivered_per_s", "produced_per_s", "delivery_ms")}
    p50, base_p50 = summary.get("delivery_ms", {}).get("p50"), baseline.get("delivery_ms", {}).get("p50")
    if p50 and base_p50:
        summary["delivery_p50_vs_1_watcher"] = round(p50 / base_p50, 2)
    expected = summary["events_produced"] * watchers
    summary["delivered_fraction"] = round(summary.get("events_delivered", 0) / max(1, expected), 4)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = arg_parser("python -m tests.load.orchestrator", __doc__.split("\n")[0])
    p.add_argument("mode", choices=MODES, help="api: API calls/s; watch: WatchEvents fan-out; sessions: live sessions")
    p.add_argument("--api-key", default="", help="with --target: an API key of that orchestrator")
    p.add_argument("--rate", type=float, default=200.0, help="watch: events produced per second")
    p.add_argument("--sessions", type=int, default=0, help="sessions: concurrent sessions (default --streams)")
    p.add_argument("--stack", choices=sessions.STACKS, default="offline", help="sessions: the AI services behind")
    p.add_argument("--min-silence-ms", type=int, default=1200, help="sessions: VAD min silence (CONVERSATIONAL)")
    p.add_argument("--ramp-s", type=float, default=2.0, help="sessions: spread the joins over this long")
    p.add_argument("--pin-server", type=int, default=None,
                   help="sessions: pin the orchestrator process (every thread) to this CPU; pin the driver with taskset")
    p.add_argument("--turn-taking", choices=("on", "off"), default="on",
                   help="sessions: semantic end of turn (on, the default) or silence only (off)")
    p.add_argument("--clips", nargs="+", default=list(sessions.CLIPS),
                   help="sessions: recordings the candidates speak, in turn (under tests/fixtures/speech)")
    p.add_argument("--screen", choices=("off", "ab"), default="off",
                   help="sessions: ab = a consented screen share (offline OCR) on every other turn, A/B in one run")
    args = p.parse_args(argv)
    if args.mode == "sessions":
        if args.target:
            p.error("sessions starts its own stack: --target is not supported")
        summary = sessions.run_stack(args.stack, sessions=args.sessions or args.streams, seconds=args.seconds,
                                     chunk_ms=args.chunk_ms, min_silence_ms=args.min_silence_ms, ramp_s=args.ramp_s,
                                     progress=not args.quiet, pin_server=args.pin_server,
                                     turn_taking=args.turn_taking == "on", clips=tuple(args.clips),
                                     screen_ab=args.screen == "ab")
        emit(summary)
        return 1 if summary.get("errors") else 0

    async def run(target: str, key: str, pid: int | None) -> dict[str, Any]:
        if args.mode == "api":
            return await _api(target, key, args.streams, args.seconds, pid, args.quiet)
        return await _watch(target, key, args.streams, args.seconds, args.rate, pid, args.quiet)

    if args.target:
        summary = asyncio.run(run(args.target, args.api_key, None))
    else:
        key = "load-" + secrets.token_hex(16)
        with RedisServer() as redis_server:
            env = {"REDIS_URL": redis_server.url, "ORCHESTRATOR_API_KEYS": f"load:{key}", "LOG_LEVEL": "WARNING",
                   "ORCHESTRATOR_API_RATE_PER_S": "0", "ORCHESTRATOR_API_WATCH_RATE_PER_S": "0",  # capacity, not limits
                   "ORCHESTRATOR_JOIN_TOKEN_SECRET": secrets.token_hex(32)}
            with ServiceProcess("orchestrator", env=env) as proc:
                summary = asyncio.run(run(proc.address, key, proc.pid))
    emit(summary)
    return 1 if summary.get("errors") else 0


BENCH = [
    ["api", "--streams", "16", "--seconds", "20", "--quiet"],
    ["watch", "--streams", "50", "--seconds", "20", "--rate", "200", "--quiet"],
    ["sessions", "--sessions", "4", "--seconds", "40", "--stack", "offline", "--chunk-ms", "20", "--quiet"],
    ["sessions", "--sessions", "10", "--seconds", "40", "--stack", "fixed-latency", "--chunk-ms", "20", "--quiet"],
    ["sessions", "--sessions", "100", "--seconds", "40", "--ramp-s", "10", "--stack", "echo", "--chunk-ms", "20",
     "--quiet"],
]

if __name__ == "__main__":
    sys.exit(main())
