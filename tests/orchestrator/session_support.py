"""A scripted candidate for Session.Connect, and an in-process orchestrator (injectable clock, also
the store's) wired to real VAD / STT / LLM / TTS subprocesses and the suite's real redis-server.

The candidate behaves like media: it streams 16 kHz audio up continuously in real time (silence
between utterances, one timeline), "plays" agent audio at real time (or instantly), honours
PAUSE / RESUME / CLEAR, and sends playback marks.
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import redis.asyncio as aioredis

from interview.v1 import (common_pb2, interviews_pb2, llm_pb2_grpc, session_pb2, session_pb2_grpc, stt_pb2_grpc,
                          tts_pb2_grpc, vad_pb2_grpc)
from services.common.audio import read_wav
from services.common.clock import Clock
from services.common.server import ServerSettings, ServiceRuntime
from services.orchestrator import plans
from services.orchestrator.conversation.settings import LoopSettings, Stubs
from services.orchestrator.conversation.connect import SessionServicer
from services.orchestrator.api.interviews import InterviewsApi
from services.orchestrator.store.store import InterviewStore
from services.orchestrator.api.tokens import JoinTokens

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
RATE = 16000
CHUNK = 512


def speech(name: str) -> np.ndarray:
    samples, rate = read_wav(SPEECH / name)
    assert rate == RATE
    return samples


def plan(greeting: str = "Hello there.", coding_first: bool = False) -> common_pb2.Plan:
    """A short plan: a short greeting keeps tests quick."""
    intro = common_pb2.Phase(id="intro", title="Introduction", kind=common_pb2.PHASE_INTRODUCTION, time_budget_s=600,
                             questions=[common_pb2.Question(id="q1", text="Tell me about a project you liked."),
                                        common_pb2.Question(id="q2", text="What was the hardest part?")])
    coding = common_pb2.Phase(id="coding", title="Live coding", kind=common_pb2.PHASE_LIVE_CODING, time_budget_s=600,
                              questions=[common_pb2.Question(id="c1", text="Please write FizzBuzz.")])
    phases = [coding, intro] if coding_first else [intro, coding]
    return common_pb2.Plan(name="t", title="Test", role="Engineer", greeting=greeting, version="1", phases=phases,
                           coding_problem=common_pb2.CodingProblem(title="FizzBuzz", statement="Print 1..15.",
                                                                   language="python"))


class Tap:
    """Passes every call through to the real stub and keeps what was sent (and can slow the
    responses down): the services stay real, the test sees the per-turn messages."""

    def __init__(self, stub: Any, delay_s: float = 0.0):
        self.stub, self.delay_s, self.sent = stub, delay_s, []

    def __getattr__(self, method: str) -> Any:
        real = getattr(self.stub, method)

        def call(request: Any, *args: Any, **kwargs: Any) -> Any:
            if hasattr(request, "__aiter__"):
                request = self._record(request)
            else:
                self.sent.append(request)
            response = real(request, *args, **kwargs)
            return _Slowed(response, self.delay_s) if self.delay_s else response
        return call

    async def _record(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for r in requests:
            self.sent.append(r)
            yield r


class _Slowed:
    def __init__(self, call: Any, delay_s: float):
        self.call, self.delay_s = call, delay_s

    def cancel(self) -> bool:
        return self.call.cancel()

    async def __aiter__(self) -> AsyncIterator[Any]:
        async for r in self.call:
            await asyncio.sleep(self.delay_s)
            yield r


class Orchestrator:
    """Session + Interviews logic in this process (so tests can inject a FakeClock)."""

    def __init__(self, redis_url: str, ai: dict[str, str], clock: Clock | None = None, **settings: Any):
        self.redis = aioredis.Redis.from_url(redis_url)
        self.store = InterviewStore(self.redis, prefix=f"s{secrets.token_hex(3)}:", retention_s=3600,
                                    now=clock.time if clock is not None else time.time)  # one time line
        self.tokens = JoinTokens(secrets.token_bytes(32))
        self.api = InterviewsApi(self.store, self.tokens, plans.load_dir(), "http://x", 3600)
        self.channels = [grpc.aio.insecure_channel(ai[n]) for n in ("vad", "stt", "llm", "tts")]
        stubs = Stubs(vad_pb2_grpc.VadStub(self.channels[0]), stt_pb2_grpc.SttStub(self.channels[1]),
                      llm_pb2_grpc.LlmStub(self.channels[2]), tts_pb2_grpc.TtsStub(self.channels[3]))
        self.servicer = SessionServicer(self.store, self.api, self.tokens, stubs, LoopSettings(**settings),
                                        owner="test-" + secrets.token_hex(2), clock=clock)
        self.runtime = ServiceRuntime("orchestrator", ServerSettings(port=0, shutdown_grace_s=1))
        self.runtime.port = 0
        self.runtime.add("interview.v1.Session", session_pb2_grpc.add_SessionServicer_to_server, self.servicer)
        self.address = ""

    async def start(self) -> "Orchestrator":
        port = await self.runtime.start()
        self.address = f"127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        await self.runtime.stop(0.5)
        for ch in self.channels:
            await ch.close()
        await self.redis.aclose()

    @staticmethod
    @contextlib.asynccontextmanager
    async def on(redis_url: str, ai: dict[str, Any], **own: Any) -> AsyncIterator["Orchestrator"]:
        """Started on the AI processes `ai` (ServiceProcess by name), with `own` ones in their place
        (a service the test kills, restarts or configures); stopped after."""
        orch = await Orchestrator(redis_url, {k: p.address for k, p in {**ai, **own}.items()}).start()
        try:
            yield orch
        finally:
            await orch.stop()

    async def create(self, **config: Any) -> tuple[str, str]:
        p = config.pop("plan", None) or plan()
        persona = config.pop("persona", common_pb2.PERSONA_UNSPECIFIED)
        r = await self.api.create(interviews_pb2.CreateInterviewRequest(
            plan=p, candidate=interviews_pb2.Candidate(name="Ada"), persona=persona,
            config=interviews_pb2.InterviewConfig(**config)), "test")
        return r.interview.id, r.join_token

    async def transcript(self, iid: str) -> list[interviews_pb2.TranscriptEntry]:
        """The stored transcript once the interview's session (if any) has finished writing."""
        for _ in range(500):
            if iid not in self.servicer.live:
                break
            await asyncio.sleep(0.01)
        return await self.store.transcript(iid)


@dataclass
class Generation:
    id: str
    received: int = 0
    played: int = 0
    last: bool = False
    paused: bool = False
    cleared: bool = False
    text: list[str] = field(default_factory=list)
    first_audio_at: float | None = None  # wall clock
    first_audio_offset: int | None = None  # upstream timeline position when its first chunk arrived
    after_clear: int = 0  # chunks received after CLEAR: must stay 0
    finished_sent: bool = False


class Candidate:
    def __init__(self, address: str, iid: str, *, token: str = "", credential: str = "", instant_playback: bool = False):
        self.address, self.iid, self.token, self.credential = address, iid, token, credential
        self.instant = instant_playback
        self.messages: list[tuple[float, session_pb2.ServerMessage]] = []
        self.generations: dict[str, Generation] = {}
        self.order: list[str] = []
        self.offset = 0  # upstream timeline (samples sent)
        self._say: asyncio.Queue[tuple[np.ndarray, asyncio.Future[int]]] = asyncio.Queue()
        self._out: asyncio.Queue[session_pb2.ClientMessage | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self.status: grpc.StatusCode | None = None
        self.details = ""
        self.ended = asyncio.Event()
        self.channel = grpc.aio.insecure_channel(address)
        self.send_audio = True
        self.hold_playback = False

    async def __aenter__(self) -> "Candidate":
        join = session_pb2.Join(interview_id=self.iid, audio_format=common_pb2.AudioFormat(sample_rate_hz=RATE),
                                playback_sample_rate_hz=16000)
        if self.credential:
            join.session_credential = self.credential
        else:
            join.join_token = self.token
        self._out.put_nowait(session_pb2.ClientMessage(join=join))
        self.call = session_pb2_grpc.SessionStub(self.channel).Connect(self._requests())
        self._tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._mic()),
                       asyncio.create_task(self._player())]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        self._out.put_nowait(None)  # half-close: the orchestrator reads what was sent, then ends the session
        try:  # cancelling at once raced the last mark (seen in CI: a finished reply stored as interrupted)
            async with asyncio.timeout(3):
                while not self.call.done():
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pass
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.call.cancel()
        await self.channel.close()

    async def _requests(self) -> Any:
        while (msg := await self._out.get()) is not None:
            yield msg

    async def _read(self) -> None:
        try:
            async for msg in self.call:
                now = time.monotonic()
                self.messages.append((now, msg))
                kind = msg.WhichOneof("msg")
                if kind == "audio":
                    a = msg.audio
                    g = self.generations.get(a.generation_id)
                    if g is None:
                        g = self.generations[a.generation_id] = Generation(a.generation_id)
                        self.order.append(a.generation_id)
                    if g.cleared:
                        g.after_clear += 1
                        continue
                    n = len(a.chunk.pcm) // 2
                    if n and g.first_audio_at is None:
                        g.first_audio_at, g.first_audio_offset = now, self.offset
                    g.received += n
                    g.last = g.last or a.last
                    if a.text:
                        g.text.append(a.text)
                elif kind == "playback":
                    g = self.generations.setdefault(msg.playback.generation_id, Generation(msg.playback.generation_id))
                    action = msg.playback.action
                    g.paused = action == session_pb2.PLAYBACK_PAUSE
                    if action == session_pb2.PLAYBACK_CLEAR:
                        g.cleared = True
            self.status = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            self.status, self.details = exc.code(), exc.details() or ""
        finally:
            self.ended.set()

    async def _mic(self) -> None:
        """Real-time upstream audio: queued speech, else silence, 32 ms per chunk."""
        t0 = time.monotonic()
        sent = 0
        buf = np.zeros(0, dtype=np.int16)
        done: list[tuple[int, asyncio.Future[int]]] = []
        while True:
            while len(buf) < CHUNK and not self._say.empty():
                samples, fut = self._say.get_nowait()
                buf = np.concatenate([buf, samples])
                done.append((self.offset + len(buf), fut))
            chunk, buf = (buf[:CHUNK], buf[CHUNK:]) if len(buf) else (np.zeros(CHUNK, dtype=np.int16), buf)
            if len(chunk) < CHUNK:
                chunk = np.concatenate([chunk, np.zeros(CHUNK - len(chunk), dtype=np.int16)])
            if self.send_audio:
                self._out.put_nowait(session_pb2.ClientMessage(audio=common_pb2.AudioChunk(
                    pcm=chunk.tobytes(), offset_samples=self.offset)))
            self.offset += CHUNK
            for end, fut in [d for d in done if d[0] <= self.offset]:
                fut.done() or fut.set_result(self.offset)
            done = [d for d in done if d[0] > self.offset]
            sent += 1
            await asyncio.sleep(max(0.0, t0 + sent * CHUNK / RATE - time.monotonic()))

    async def say(self, samples: np.ndarray) -> int:
        """Speak (queued behind what is being said); returns the timeline offset where it ended."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        await self._say.put((samples.astype(np.int16), fut))
        return await fut

    async def pause(self, seconds: float) -> None:
        await self.say(np.zeros(int(seconds * RATE), dtype=np.int16))

    async def _player(self) -> None:
        """Plays generations in order at real time (instantly if asked), sending marks."""
        last_mark = 0.0
        while True:
            await asyncio.sleep(0.02)
            g = next((self.generations[x] for x in self.order
                      if not self.generations[x].cleared and not self.generations[x].finished_sent), None)
            if g is None or g.paused:
                continue
            if not self.hold_playback:  # holding = media's jitter buffer not started: marks say 0 played
                g.played = g.received if self.instant else min(g.received, g.played + int(0.02 * RATE))
            finished = g.last and g.played >= g.received
            if finished or time.monotonic() - last_mark > 0.1:
                last_mark = time.monotonic()
                g.finished_sent = finished
                self._out.put_nowait(session_pb2.ClientMessage(mark=session_pb2.PlaybackMark(
                    generation_id=g.id, samples_played=g.played, finished=finished)))

    # ---- queries ----

    def of(self, kind: str) -> list[Any]:
        return [getattr(m, kind) for _, m in self.messages if m.WhichOneof("msg") == kind]

    def playback(self) -> list[tuple[int, str]]:
        return [(p.action, p.generation_id) for p in self.of("playback")]

    def agent_text(self, gid: str) -> str:
        return " ".join(self.generations[gid].text)

    async def wait_for(self, predicate: Any, timeout: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}; got "
                                     f"{[m.WhichOneof('msg') for _, m in self.messages][-20:]}")
            if self.ended.is_set() and not predicate():
                raise AssertionError(f"stream ended ({self.status} {self.details}) waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_generations(self, n: int, timeout: float = 15.0) -> str:
        await self.wait_for(lambda: len([g for g in self.order if self.generations[g].received]) >= n, timeout,
                            f"{n} agent generations with audio")
        return [g for g in self.order if self.generations[g].received][n - 1]

    async def wait_played(self, gid: str, timeout: float = 20.0) -> None:
        g = self.generations[gid]
        await self.wait_for(lambda: g.cleared or g.finished_sent, timeout, f"{gid} played")
