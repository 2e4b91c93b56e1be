"""`python -m tests.load.orchestrator sessions`: N live sessions through Session.Connect.

Each session is a scripted candidate that behaves like media: it joins with a join token from the
API, streams 16 kHz audio up in real time (silence between utterances, one timeline, `--chunk-ms`
chunks; media sends 20 ms), plays agent audio instantly and marks each generation finished on its
last chunk. It speaks a fixture recording, waits for the reply's first audio, waits for the reply to
end, pauses, and speaks again.

End of speech is NOT our VAD's opinion: it is the end of the recording's last voiced chunk
(`tests.fakes.ai_services.speech_end`: chunk RMS > 300, chunks counted from the clip's start, and the
clip starts on a chunk boundary of the timeline), stamped with the wall clock when that chunk is
handed to gRPC. Latency = first agent audio chunk received - that stamp; overhead = latency - the
configured VAD min silence - the latencies the fakes inject (fixed-latency stack).

Stacks: offline (real VAD / STT / LLM / TTS subprocesses, offline providers), fixed-latency and echo
(tests/fakes/ai_services.py in one subprocess). A private redis-server and orchestrator process
are always started; the orchestrator's CPU and RSS are sampled from /proc.

`--screen ab` adds the video service (offline OCR) and a consented screen share to every session:
turns alternate A (no frames) / B (a typing editor shared at the orchestrator's FrameRates — live
coding, CONVERSATIONAL: 2 fps — from the pause before the candidate speaks until the reply has
played), so the same run compares end of speech -> first agent audio with and without frames
flowing and OCR running (`eos_to_first_audio_ms[A]` / `[B]`, and per clip: the arms switch after
each round of clips, so every clip is spoken in both; both arms pause 1 s more before speaking).
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np

from interview.v1 import common_pb2, interviews_pb2, session_pb2, session_pb2_grpc
from services.orchestrator.api.client import InterviewsClient
from tests.fakes.ai_services import speech_end
from tests.load.harness import LoadRun, ProcSampler, load_recordings, run_load
from tests.support.procs import ROOT, RedisServer, ServiceProcess

RATE = 16000
CLIPS = ("goforward_16k.wav", "forever_16k.wav")  # pocketsphinx transcribes both (a reply needs words)
STACKS = ("offline", "fixed-latency", "cloud-latency", "echo")
FIXED = {"stt_finalize_ms": 100.0, "llm_first_token_ms": 250.0, "tts_first_audio_ms": 100.0}
# Cloud-like latencies (issue 14) for STT / LLM / TTS; the VAD is the real one (Silero and the
# Smart Turn model: a fake cannot tell a thinking pause from an end).
CLOUD = {"stt_finalize_ms": 250.0, "llm_first_token_ms": 400.0, "tts_first_audio_ms": 120.0}


@dataclass(frozen=True)
class Clip:
    samples: np.ndarray
    speech_end: int  # samples from the clip's start
    name: str = ""


class Candidate:
    """One session's media side. The shared `Ticker` calls `tick` once per chunk interval.
    With `screen` (JPEG frames), it consents to screen analysis and, while `sharing`, sends the
    frames at the screen rate the orchestrator asks for (as media does after its rate gate)."""

    def __init__(self, address: str, iid: str, token: str, chunk: int, screen: list[bytes] | None = None):
        self.chunk = chunk
        self.offset = 0
        self._silence = np.zeros(chunk, dtype=np.int16)
        self._out: asyncio.Queue[session_pb2.ClientMessage | None] = asyncio.Queue(maxsize=200)
        self._clip: Clip | None = None
        self._clip_pos = 0
        self._speech_end_at: asyncio.Future[float] | None = None
        self.generations: asyncio.Queue[tuple[str, float]] = asyncio.Queue()  # (id, first audio time)
        self._finished: dict[str, asyncio.Event] = {}
        self._samples: dict[str, int] = {}
        self.dropped = 0
        self.channel = grpc.aio.insecure_channel(address)
        self._out.put_nowait(session_pb2.ClientMessage(join=session_pb2.Join(
            interview_id=iid, join_token=token, audio_format=common_pb2.AudioFormat(sample_rate_hz=RATE),
            playback_sample_rate_hz=RATE, client_info="load")))
        self.screen, self.sharing, self.screen_fps, self.frames_sent = screen or [], False, 0.0, 0
        if screen:
            self._out.put_nowait(session_pb2.ClientMessage(consent=session_pb2.ConsentUpdate(
                consent=common_pb2.VideoConsent(screen=True))))
        self.call = session_pb2_grpc.SessionStub(self.channel).Connect(self._requests())
        self.reader = asyncio.create_task(self._read())
        self.sharer = asyncio.create_task(self._share()) if screen else None

    async def _share(self) -> None:
        n, t0 = 0, time.monotonic()
        while True:
            await asyncio.sleep(1 / self.screen_fps if self.screen_fps > 0 else 0.1)
            if not self.sharing or self.screen_fps <= 0:
                continue
            jpeg = self.screen[n % len(self.screen)]
            n += 1
            with contextlib.suppress(asyncio.QueueFull):  # behind: media drops frames first
                self._out.put_nowait(session_pb2.ClientMessage(frame=common_pb2.VideoFrame(
                    jpeg=jpeg, source=common_pb2.VIDEO_SOURCE_SCREEN, time_ms=int((time.monotonic() - t0) * 1000),
                    width=1280, height=720)))
                self.frames_sent += 1

    async def _requests(self) -> AsyncIterator[session_pb2.ClientMessage]:
        while (msg := await self._out.get()) is not None:
            yield msg

    def tick(self) -> None:
        """The next chunk of the timeline: the clip being spoken, else silence."""
        if self._clip is not None:
            clip = self._clip
            pcm = clip.samples[self._clip_pos:self._clip_pos + self.chunk]
            self._clip_pos += self.chunk
            if len(pcm) < self.chunk:
                pcm = np.concatenate([pcm, self._silence[:self.chunk - len(pcm)]])
            if self._clip_pos >= clip.speech_end and self._speech_end_at is not None:
                self._speech_end_at.set_result(time.monotonic())  # set right as the chunk is handed over
                self._speech_end_at = None
            if self._clip_pos >= len(clip.samples):
                self._clip = None
        else:
            pcm = self._silence
        try:
            self._out.put_nowait(session_pb2.ClientMessage(audio=common_pb2.AudioChunk(
                pcm=pcm.tobytes(), offset_samples=self.offset)))
        except asyncio.QueueFull:  # the stream is stuck: real media would drop too
            self.dropped += 1
        self.offset += self.chunk

    async def speak(self, clip: Clip) -> float:
        """Speak `clip` from the next chunk boundary; returns the monotonic time of its speech end."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._speech_end_at, self._clip, self._clip_pos = fut, clip, 0
        return await fut

    async def _read(self) -> None:
        async for msg in self.call:
            if msg.WhichOneof("msg") == "frame_rates":
                self.screen_fps = msg.frame_rates.screen_fps
            if msg.WhichOneof("msg") != "audio":
                continue
            a = msg.audio
            gid = a.generation_id
            n = len(a.chunk.pcm) // 2
            if n and gid not in self._samples:
                self._samples[gid] = 0
                self.generations.put_nowait((gid, time.monotonic()))
            self._samples[gid] = self._samples.get(gid, 0) + n
            if a.last:  # instant playback: the whole generation is "played" as it arrives
                self._out.put_nowait(session_pb2.ClientMessage(mark=session_pb2.PlaybackMark(
                    generation_id=gid, samples_played=self._samples[gid], finished=True,
                    input_offset_samples=self.offset)))
                self._finished.setdefault(gid, asyncio.Event()).set()

    async def finished(self, gid: str, timeout: float) -> None:
        await asyncio.wait_for(self._finished.setdefault(gid, asyncio.Event()).wait(), timeout)

    async def close(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._out.put_nowait(session_pb2.ClientMessage(leave=session_pb2.Leave(reason="hangup")))
        with contextlib.suppress(asyncio.TimeoutError, grpc.aio.AioRpcError):
            await asyncio.wait_for(asyncio.shield(self.reader), 3.0)
        self.reader.cancel()
        self.call.cancel()
        if self.sharer is not None:
            self.sharer.cancel()
        await asyncio.gather(self.reader, *([self.sharer] if self.sharer else []), return_exceptions=True)
        await self.channel.close()


class Ticker:
    """One real-time clock for every session's upstream audio (one wake-up per chunk, not N)."""

    def __init__(self, chunk: int):
        self.interval = chunk / RATE
        self.candidates: set[Candidate] = set()
        self.late = 0

    async def run(self) -> None:
        t0 = time.monotonic()
        n = 0
        while True:
            n += 1
            delay = t0 + n * self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                self.late += 1
            for c in list(self.candidates):
                c.tick()


STAGES = ("stt_final_ms", "llm_first_token_ms", "tts_first_audio_ms", "first_audio_sent_ms",
          "speech_end_to_commit_ms", "commit_to_first_audio_ms")


async def watch_stages(api: InterviewsClient, iid: str, run: LoadRun) -> None:
    """The session's own TurnMetrics (ms after it received SPEECH_STOPPED): where the time goes."""
    async for event in api.watch(iid, ""):
        if event.HasField("turn_metrics") and not event.turn_metrics.interrupted:
            m = event.turn_metrics
            if m.stt_final_ms >= 0:  # replies only (a greeting has no VAD stop)
                for name in STAGES:
                    run.hist(f"stage_{name}").add(getattr(m, name))


async def run_sessions(target: str, key: str, *, sessions: int, seconds: float, chunk_ms: float, min_silence_ms: int,
                       injected_ms: float, pid: int | None, ramp_s: float, progress: bool,
                       stages: bool, turn_taking: bool = True, clips_: tuple[str, ...] = CLIPS,
                       screen_ab: bool = False) -> dict[str, Any]:
    chunk = int(RATE * chunk_ms / 1000)
    screen = typing_screen() if screen_ab else None
    clips = [Clip(r.samples, speech_end(r.samples, chunk), r.name) for r in load_recordings(RATE, clips_)]
    ticker = Ticker(chunk)
    ticking = asyncio.create_task(ticker.run())
    steady = ProcSampler(pid) if pid else None
    idle: dict[str, float] = {}
    if pid:  # the baseline in the same run: the orchestrator with no session
        sampler = ProcSampler(pid)
        sampler.start()
        await asyncio.sleep(2.0)
        idle = await sampler.stop()

    async def measure_steady() -> None:
        await asyncio.sleep(ramp_s + 3.0)  # every session joined and greeted
        if steady:
            steady.start()

    async with InterviewsClient(target, key) as api:
        async def one(i: int, run: LoadRun) -> None:
            config = interviews_pb2.InterviewConfig(turn_taking=interviews_pb2.TurnTakingConfig(enabled=turn_taking))
            if screen_ab:
                created = await api.create(plan=coding_plan(), candidate_name=f"load-{i}", config=config, screen=True)
            else:
                created = await api.create(template="demo", candidate_name=f"load-{i}", config=config)
            joined = time.monotonic()
            c = Candidate(target, created.interview.id, created.join_token, chunk, screen)
            ticker.candidates.add(c)
            watcher = asyncio.create_task(watch_stages(api, created.interview.id, run)) if stages else None
            try:
                gid, first = await asyncio.wait_for(c.generations.get(), 15)
                run.hist("join_to_greeting_ms").add((first - joined) * 1000)
                await c.finished(gid, 60)
                k = i
                while not run.done():
                    await asyncio.sleep(0.3 + 0.05 * (k % 7))  # candidates out of step with each other
                    while not c.generations.empty():
                        c.generations.get_nowait()
                    clip = clips[k % len(clips)]
                    arm = ("B" if (k // len(clips)) % 2 else "A") if screen_ab else ""  # every clip in both arms
                    c.sharing = arm == "B"  # B: frames flow from before the speech until the reply played
                    if arm:
                        await asyncio.sleep(1.0)  # B: the share is flowing (and OCR busy) when the candidate speaks
                    end_at = await c.speak(clip)
                    k += 1
                    try:
                        gid, first = await asyncio.wait_for(c.generations.get(), min_silence_ms / 1000 + 10)
                    except asyncio.TimeoutError:
                        run.count("no_reply")
                        continue
                    latency = (first - end_at) * 1000
                    run.hist("eos_to_first_audio_ms").add(latency)
                    run.hist(f"eos_to_first_audio_ms[{clip.name.rsplit('/', 1)[-1]}]").add(latency)
                    if arm:
                        run.hist(f"eos_to_first_audio_ms[{arm}]").add(latency)
                        run.hist(f"eos_to_first_audio_ms[{arm}:{clip.name.rsplit('/', 1)[-1]}]").add(latency)
                    run.hist("overhead_ms").add(latency - min_silence_ms - injected_ms)
                    run.count("turns")
                    await c.finished(gid, 60)
            finally:
                if watcher is not None:
                    watcher.cancel()
                    await asyncio.gather(watcher, return_exceptions=True)
                ticker.candidates.discard(c)
                run.count("chunks_dropped", c.dropped)
                run.count("screen_frames_sent", c.frames_sent)
                await c.close()

        steady_task = asyncio.create_task(measure_steady())
        try:
            summary = await run_load(one, streams=sessions, seconds=seconds, pid=pid, recordings=[],
                                     progress=progress, ramp_s=ramp_s)
        finally:
            steady_task.cancel()
            ticking.cancel()
            await asyncio.gather(steady_task, ticking, return_exceptions=True)
    summary.update(mode="sessions", sessions=sessions, chunk_ms=chunk_ms, min_silence_ms=min_silence_ms,
                   injected_ms=injected_ms, pacing_late=ticker.late, turn_taking=turn_taking, screen_ab=screen_ab)
    a, b = (summary.get(f"eos_to_first_audio_ms[{arm}]", {}).get("p50") for arm in "AB")
    if a and b:
        summary["screen_b_over_a_p50"] = round(b / a, 3)
    if steady and steady.rss_samples:
        s = await steady.stop()
        summary["server_steady"] = s
        summary["server_idle"] = idle
        if "cpu_pct" in s and "cpu_pct" in idle:
            summary["cpu_pct_per_session"] = round((s["cpu_pct"] - idle["cpu_pct"]) / sessions, 3)
        if "rss_mb_max" in s and "rss_mb" in idle:
            summary["rss_mb_per_session"] = round((s["rss_mb_max"] - idle["rss_mb"]) / sessions, 3)
    return summary


def coding_plan() -> common_pb2.Plan:
    """Live coding kept CONVERSATIONAL: the screen is sampled at SCREEN_FOCUS (2 fps) while the
    candidate is answered after the usual silence; enough questions that the scripted interviewer
    does not reach the wrap-up (and end the interview) during a run."""
    questions = [common_pb2.Question(id=f"c{n}", text=f"Coding question {n}: what would you change next?")
                 for n in range(1, 51)]  # the plan schema allows 50
    coding = common_pb2.Phase(id="coding", title="Live coding", kind=common_pb2.PHASE_LIVE_CODING, time_budget_s=3600,
                              mode=common_pb2.MODE_CONVERSATIONAL, questions=questions)
    wrap = common_pb2.Phase(id="wrap", title="Wrap-up", kind=common_pb2.PHASE_WRAP_UP, time_budget_s=60)
    return common_pb2.Plan(name="load-coding", title="Coding", role="Engineer", greeting="Hi.", version="1",
                           phases=[coding, wrap])


def typing_screen(seconds: float = 120.0, fps: float = 2.0) -> list[bytes]:
    """A 1280x720 editor being typed into (tests/video/screens.py), as media would send it."""
    import io

    from PIL import Image

    from tests.video import screens

    out = []
    for _, jpeg in screens.coding_session(seconds, fps):
        img = Image.open(io.BytesIO(jpeg)).convert("RGB").resize((1280, 720))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85)
        out.append(buf.getvalue())
    return out


@contextlib.contextmanager
def fakes_process(latencies: dict[str, float]) -> Iterator[tuple[str, int]]:
    """tests/fakes/ai_services.py in its own process: (address, pid)."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in latencies.items()]
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.ai_services", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line.startswith("PORT "):
            raise RuntimeError(f"the AI fakes did not start (exit {proc.poll()})")
        address = f"127.0.0.1:{int(line.split()[1])}"
        yield address, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def ai_stack(stack: str, video: bool = False) -> Iterator[dict[str, str]]:
    """Addresses of VAD / STT / LLM / TTS (and the offline video service, `video`) for `stack`."""
    if stack == "offline":
        names = ["vad", "stt", "llm", "tts", *(["video"] if video else [])]
        procs = [ServiceProcess("vad"), ServiceProcess("stt"), ServiceProcess("llm"),
                 ServiceProcess("tts", env={"TTS_PROVIDERS": "offline"}),
                 *([ServiceProcess("video", env={"VIDEO_PROVIDERS": "offline"})] if video else [])]
        with contextlib.ExitStack() as stack_:
            for p in procs:
                stack_.enter_context(p)
            yield dict(zip(names, (p.address for p in procs)))
        return
    if video:
        raise ValueError("--screen needs --stack offline (the offline video service)")
    if stack == "cloud-latency":
        with ServiceProcess("vad") as vad, fakes_process(CLOUD) as (address, _):
            yield {"vad": vad.address, "stt": address, "llm": address, "tts": address}
        return
    with fakes_process(FIXED if stack == "fixed-latency" else {}) as (address, _):
        yield {name: address for name in ("vad", "stt", "llm", "tts")}


def run_stack(stack: str, *, sessions: int, seconds: float, chunk_ms: float, min_silence_ms: int, ramp_s: float,
              progress: bool, pin_server: int | None = None, turn_taking: bool = True,
              clips: tuple[str, ...] = CLIPS, screen_ab: bool = False) -> dict[str, Any]:
    """Start redis, the AI stack and an orchestrator process; run the sessions against them."""
    key = "load-" + secrets.token_hex(16)
    with RedisServer() as redis_server, ai_stack(stack, video=screen_ab) as ai:
        env = {"REDIS_URL": redis_server.url, "ORCHESTRATOR_API_KEYS": f"load:{key}", "LOG_LEVEL": "WARNING",
               "ORCHESTRATOR_API_RATE_PER_S": "0", "ORCHESTRATOR_API_WATCH_RATE_PER_S": "0",  # capacity, not limits
               "ORCHESTRATOR_JOIN_TOKEN_SECRET": secrets.token_hex(32),
               "ORCHESTRATOR_CONVERSATIONAL_SILENCE_MS": str(min_silence_ms),
               **{f"{name.upper()}_ADDR": address for name, address in ai.items()}}
        with ServiceProcess("orchestrator", env=env) as proc:
            if pin_server is not None:
                pin_process(proc.pid, pin_server)
            injected = sum({"fixed-latency": FIXED, "cloud-latency": CLOUD}.get(stack, {}).values())
            before, t0 = redis_calls(redis_server.url), time.monotonic()
            summary = asyncio.run(run_sessions(proc.address, key, sessions=sessions, seconds=seconds,
                                               chunk_ms=chunk_ms, min_silence_ms=min_silence_ms, injected_ms=injected,
                                               pid=proc.pid, ramp_s=ramp_s, progress=progress,
                                               stages=stack != "echo", turn_taking=turn_taking, clips_=clips,
                                               screen_ab=screen_ab))
            elapsed, after = time.monotonic() - t0, redis_calls(redis_server.url)
    summary["redis"] = redis_rates(before, after, elapsed, sessions)
    summary["stack"] = stack
    return summary


def redis_calls(url: str) -> dict[str, int]:
    """Redis's own count of calls per command (INFO commandstats), for a delta around a run."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def redis_rates(before: dict[str, int], after: dict[str, int], elapsed_s: float, sessions: int) -> dict[str, Any]:
    """Commands per session-second over the whole run (joins, greetings and turns included)."""
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}
    delta.pop("info", None)  # our own probe
    total = sum(delta.values())
    per = sessions * elapsed_s
    return {"calls": total, "seconds": round(elapsed_s, 1), "ops_per_session_s": round(total / per, 2),
            "by_command_per_session_s": {k: round(v / per, 3) for k, v in sorted(delta.items(), key=lambda kv: -kv[1])}}


def pin_process(pid: int, cpu: int) -> None:
    """Every thread of `pid` onto one CPU (threads it starts later inherit it)."""
    import os

    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), {cpu})
