"""Load driver for the llm service: time to first token and throughput, and the overhead the
service adds over calling the provider's SDK (google-genai or openai) directly.

    python -m tests.load.llm --concurrency 8 --requests 400 --first-delay-ms 20 [--provider openai]

Starts the provider's fake (Gemini, or the OpenAI-compatible one) as its own process (configurable
latency) and the llm service as a real subprocess pointed at it. The same number of requests then goes, in alternating rounds so both
sides share the machine's noise: (1) straight from this process through the SDK to the fake (the
baseline), (2) through the service (gRPC -> chain -> SDK -> fake), (3) through the service to the
scripted interviewer. Prints one JSON line last: requests/s and TTFT p50/p99 per path, and the
service's TTFT overhead over the baseline.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from interview.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from services.llm.generation import Defaults, settings_for
from services.llm.prompting import PromptSet
from tests.fakes import gemini as fake_gemini, openai as fake_openai
from tests.load.harness import Histogram, ProcSampler, emit
from tests.support.procs import ROOT, ServiceProcess

BENCH = [
    ["--concurrency", "1", "--requests", "300", "--first-delay-ms", "0"],
    ["--concurrency", "8", "--requests", "800", "--first-delay-ms", "20"],
    ["--provider", "openai", "--concurrency", "1", "--requests", "300", "--first-delay-ms", "0"],
    ["--provider", "openai", "--concurrency", "8", "--requests", "800", "--first-delay-ms", "20"],
]
ROUNDS = 5


def sample_request() -> llm_pb2.GenerateRequest:
    """A mid-interview reply: plan, ten turns of history, an observation."""
    q = common_pb2.Question
    plan = common_pb2.Plan(name="bench", title="Backend screen", role="backend engineer", phases=[
        common_pb2.Phase(id="intro", title="Introduction", kind=common_pb2.PHASE_INTRODUCTION,
                         questions=[q(id="i1", text="Tell me about your current role.")]),
        common_pb2.Phase(id="tech", title="Technical", kind=common_pb2.PHASE_TECHNICAL_SCREENING,
                         questions=[q(id=f"t{i}", text=f"Technical question number {i}?") for i in range(6)]),
        common_pb2.Phase(id="wrap-up", title="Wrap-up", kind=common_pb2.PHASE_WRAP_UP)])
    history = []
    for i in range(5):
        history.append(llm_pb2.ChatMessage(role=common_pb2.ROLE_AGENT, text=f"Technical question number {i}?"))
        history.append(llm_pb2.ChatMessage(role=common_pb2.ROLE_USER, text="I would use a queue with retries and "
                                           "idempotency keys so that duplicates are harmless, and measure the lag."))
    ctx = llm_pb2.InterviewContext(plan=plan, phase_id="tech", mode=common_pb2.MODE_CONVERSATIONAL, phase_time_left_s=300)
    ctx.observations.add(type="screen_text", detail="def handler(event): ...", confidence=0.8,
                         source=common_pb2.VIDEO_SOURCE_SCREEN, actionable=True)
    return llm_pb2.GenerateRequest(persona=common_pb2.PERSONA_INTERVIEWER, context=ctx, history=history,
                                   task=llm_pb2.TASK_REPLY)


async def drive(name: str, n: int, concurrency: int, one: Callable[[], Awaitable[float]],
                hists: dict[str, Histogram], walls: dict[str, float], errors: list[str]) -> None:
    """`n` requests of `one` (returns TTFT ms) at `concurrency`; adds to hists/walls."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)
    hist = hists.setdefault(name, Histogram())

    async def worker() -> None:
        while not queue.empty():
            queue.get_nowait()
            try:
                hist.add(await one())
            except Exception as exc:  # a failed request is a result
                errors.append(f"{name}: {type(exc).__name__}: {exc}"[:300])

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    walls[name] = walls.get(name, 0.0) + time.monotonic() - t0


Direct = tuple[Callable[[], Awaitable[float]], Callable[[], Awaitable[None]]]


def direct_gemini(base_url: str, req: llm_pb2.GenerateRequest) -> Direct:
    """The baseline: google-genai in this process, the request the provider would build."""
    from google import genai
    from google.genai import types

    from services.llm.providers.gemini import build_config

    settings = settings_for(req, Defaults("gemini-2.5-flash", 0.6, 400, 2.5, 30.0))
    config, contents = build_config(PromptSet("v1"), req, settings)
    client = genai.Client(api_key=fake_gemini.API_KEY, http_options=types.HttpOptions(
        base_url=base_url, retry_options=types.HttpRetryOptions(attempts=1)))

    async def one() -> float:
        t0 = time.perf_counter()
        ttft = None
        async for chunk in await client.aio.models.generate_content_stream(
                model=settings.model, contents=contents, config=config):
            if ttft is None and chunk.text:
                ttft = (time.perf_counter() - t0) * 1000
        assert ttft is not None
        return ttft

    return one, client.aio.aclose


def direct_openai(base_url: str, req: llm_pb2.GenerateRequest) -> Direct:
    """The baseline: the openai SDK in this process, the request the provider would build."""
    from openai import AsyncOpenAI

    from services.llm.providers.openai import chat_request

    settings = settings_for(req, Defaults("gpt-4o-mini", 0.6, 400, 2.5, 30.0))
    body = chat_request(PromptSet("v1"), req, settings, token_field="max_tokens")
    client = AsyncOpenAI(api_key=fake_openai.API_KEY, base_url=base_url, max_retries=0)

    async def one() -> float:
        t0 = time.perf_counter()
        ttft = None
        async with await client.chat.completions.create(**body) as stream:
            async for chunk in stream:
                if ttft is None and chunk.choices and chunk.choices[0].delta.content:
                    ttft = (time.perf_counter() - t0) * 1000
        assert ttft is not None
        return ttft

    return one, client.close


@dataclass(frozen=True)
class Target:
    fake: str  # the fake's module, run as its own process
    direct: Callable[[str, llm_pb2.GenerateRequest], Direct]
    env: Callable[[str], dict[str, str]]  # the service's variables for the fake at this base URL
    path: str = ""  # the base URL's path after host:port


PROVIDERS = {
    "gemini": Target("tests.fakes.gemini", direct_gemini,
                     lambda url: {"GEMINI_API_KEY": fake_gemini.API_KEY, "LLM_GEMINI_BASE_URL": url}),
    "openai": Target("tests.fakes.openai", direct_openai,
                     lambda url: {"OPENAI_API_KEY": fake_openai.API_KEY, "OPENAI_BASE_URL": url}, "/v1"),
}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    target = PROVIDERS[args.provider]
    fake = subprocess.Popen([sys.executable, "-m", target.fake, "--first-delay-ms", str(args.first_delay_ms)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True)
    try:
        assert fake.stdout is not None
        base_url = f"http://127.0.0.1:{int(fake.stdout.readline())}{target.path}"
        env = {"LLM_PROVIDERS": f"{args.provider},scripted", **target.env(base_url),
               "LOG_LEVEL": "WARNING", "LLM_MAX_STREAMS": "10000"}
        with ServiceProcess("llm", env=env) as service:
            return await _measure(args, base_url, service)
    finally:
        fake.terminate()
        fake.wait(10)


async def _measure(args: argparse.Namespace, base_url: str, service: ServiceProcess) -> dict[str, Any]:
    req = sample_request()
    sdk_direct, close_sdk = PROVIDERS[args.provider].direct(base_url, req)
    channel = grpc.aio.insecure_channel(service.address)
    stub = llm_pb2_grpc.LlmStub(channel)
    scripted = llm_pb2.GenerateRequest()
    scripted.CopyFrom(req)
    scripted.options.provider = "scripted"

    def via_service(request: llm_pb2.GenerateRequest, provider: str) -> Callable[[], Awaitable[float]]:
        async def one() -> float:
            t0 = time.perf_counter()
            ttft = None
            async for r in stub.Generate(request, timeout=30):
                if ttft is None and r.HasField("delta"):
                    ttft = (time.perf_counter() - t0) * 1000
                if r.HasField("final") and r.final.provider != provider:
                    raise RuntimeError(f"answered by {r.final.provider}, not {provider}")
            assert ttft is not None
            return ttft
        return one

    served = f"service_{args.provider}"
    paths = {"sdk_direct": sdk_direct, served: via_service(req, args.provider),
             "service_scripted": via_service(scripted, "scripted")}
    hists: dict[str, Histogram] = {}
    walls: dict[str, float] = {}
    errors: list[str] = []
    for name, one in paths.items():  # warm-up: connections, sessions, imports
        await drive(f"warmup_{name}", min(20, args.requests), args.concurrency, one, {}, {}, errors)
    sampler = ProcSampler(service.pid)
    sampler.start()
    per_round = max(1, args.requests // ROUNDS)
    for r in range(ROUNDS):
        for name, one in paths.items():
            await drive(name, per_round, args.concurrency, one, hists, walls, errors)
        if not args.quiet:
            print(f"\rround {r + 1}/{ROUNDS} " + " ".join(f"{n}.p50={h.percentile(50):.2f}ms" for n, h in hists.items()),
                  end="", file=sys.stderr, flush=True)
    if not args.quiet:
        print(file=sys.stderr)
    server = await sampler.stop()
    await channel.close()
    await close_sdk()
    summary: dict[str, Any] = {"provider": args.provider, "concurrency": args.concurrency, "requests_per_path": per_round * ROUNDS,
                               "fake_first_delay_ms": args.first_delay_ms}
    for name, hist in hists.items():
        s = hist.summary()
        summary[name] = {"requests_per_s": round(len(hist) / walls[name], 1),
                         "ttft_ms": {k: s[k] for k in ("p50", "p99", "max") if k in s}}
    base, ours = hists["sdk_direct"], hists[served]
    summary["overhead_ttft_p50_ms"] = round(ours.percentile(50) - base.percentile(50), 3)
    summary["overhead_ttft_p99_ms"] = round(ours.percentile(99) - base.percentile(99), 3)
    summary["ttft_p50_ratio"] = round(ours.percentile(50) / base.percentile(50), 3)
    summary["server"] = server
    summary["errors"] = len(errors)
    if errors:
        summary["first_errors"] = errors[:3]
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.load.llm", description=__doc__.split("\n\n")[0])
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight per path")
    p.add_argument("--requests", type=int, default=400, help="requests per path (split over alternating rounds)")
    p.add_argument("--first-delay-ms", type=float, default=20.0, help="the fake's time to first token")
    p.add_argument("--provider", choices=sorted(PROVIDERS), default="gemini",
                   help="the provider (and its fake and SDK) measured against the service")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    args = p.parse_args(argv)
    summary = asyncio.run(run(args))
    emit(summary)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
