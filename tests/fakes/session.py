"""A protocol-faithful fake orchestrator for media's tests: a grpc.aio Session servicer.

It issues real join tokens (services.orchestrator.api.tokens), refuses joins with the contract's
statuses, sends SessionCredential, VideoPolicy and SessionState, speaks a real greeting (flite at
24 kHz) as AgentAudio with generation ids, records everything media sends up (audio on its
timeline, frames, marks, consent, leave), and honours the two-stage barge-in: when the candidate
speaks (energy over 3 chunks) while a generation plays, it sends PLAYBACK_PAUSE, then
PLAYBACK_CLEAR `clear_after_s` later, then a few late chunks of the cleared generation that media
must discard. In echo mode it sends the candidate's audio straight back (round-trip latency).
The real orchestrator (issue 8) replaces it with a one-line change of address in the tests.
"""
from __future__ import annotations

import asyncio
import functools
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

from interview.v1 import common_pb2, session_pb2, session_pb2_grpc
from services.common.audio import read_wav, resample
from services.orchestrator.api.tokens import JoinTokens, TokenError
from services.orchestrator.store.store import LINK_IN_USE

AGENT_RATE = 24000
GREETING = "Good morning and thank you for coming. Please tell me about your experience with software testing."
MONOLOGUE = ("While you think about that, let me describe the role in more detail. The team builds "
             "reliable services for millions of users, and we care about clear code and careful testing.")


@functools.lru_cache(maxsize=8)
def flite_speech(text: str, rate: int = AGENT_RATE) -> np.ndarray:
    """Real synthesized speech (flite), int16 mono at `rate`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.wav"
        subprocess.run(["flite", "-voice", "kal16", "-t", text, "-o", str(path)], check=True, capture_output=True)
        samples, in_rate = read_wav(path)
    return resample(samples, in_rate, rate)


@dataclass
class Interview:
    id: str
    policy: session_pb2.VideoPolicy
    credential: str = ""
    ended: bool = False
    live: "Recorded | None" = None
    link: str = ""  # the nonce of the join link the live session was joined with


@dataclass
class Recorded:
    """One Session.Connect stream as the fake saw it."""

    interview_id: str
    join: session_pb2.Join
    out: asyncio.Queue[session_pb2.ServerMessage | None] = field(default_factory=asyncio.Queue)
    audio: dict[int, bytes] = field(default_factory=dict)  # offset -> pcm (16 kHz)
    audio_at: list[float] = field(default_factory=list)    # wall time each chunk arrived
    frames: list[common_pb2.VideoFrame] = field(default_factory=list)
    marks: list[session_pb2.PlaybackMark] = field(default_factory=list)
    consents: list[common_pb2.VideoConsent] = field(default_factory=list)
    leave: str | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    ended_at: float = 0.0
    sent: dict[str, float] = field(default_factory=dict)  # "pause:<gen>" / "clear:<gen>" / "audio:<gen>" -> wall time
    playing: str = ""  # generation sent and not yet reported finished

    def candidate_audio(self) -> np.ndarray:
        if not self.audio:
            return np.zeros(0, np.int16)
        end = max(o + len(p) // 2 for o, p in self.audio.items())
        out = np.zeros(end, np.int16)
        for o, p in self.audio.items():
            out[o:o + len(p) // 2] = np.frombuffer(p, "<i2")
        return out

    def send(self, **kw: object) -> None:
        self.out.put_nowait(session_pb2.ServerMessage(**kw))


class FakeSession(session_pb2_grpc.SessionServicer):
    def __init__(self, *, greeting: str | None = GREETING, follow_up: str | None = None, echo: bool = False,
                 barge_in: bool = True, clear_after_s: float = 0.3, late_chunks: int = 10,
                 speech_dbfs: float = -35.0, frame_rates: session_pb2.FrameRates | None = None):
        self.tokens = JoinTokens(secrets.token_bytes(32))
        self.interviews: dict[str, Interview] = {}
        self.sessions: list[Recorded] = []
        self.greeting, self.follow_up, self.echo = greeting, follow_up, echo
        self.barge_in, self.clear_after_s, self.late_chunks = barge_in, clear_after_s, late_chunks
        self.speech_rms = 32768 * 10 ** (speech_dbfs / 20)
        self.session_started = asyncio.Event()
        self.frame_rates = frame_rates  # sent after the policy, as the orchestrator does
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- test controls ----------------------------------------------------------------------

    def create(self, interview_id: str | None = None, camera: bool = True, screen: bool = True,
               ttl_s: float = 600) -> tuple[str, str]:
        iid = interview_id or "iv_" + secrets.token_hex(4)
        self.interviews[iid] = Interview(iid, session_pb2.VideoPolicy(camera_allowed=camera, screen_allowed=screen))
        token, _ = self.tokens.issue(iid, time.time(), ttl_s)
        return iid, token

    def end(self, iid: str, reason: str = "ended_by_api") -> None:
        iv = self.interviews[iid]
        iv.ended = True
        if iv.live:
            iv.live.send(end=session_pb2.SessionEnd(reason=reason))
            iv.live.out.put_nowait(None)

    async def wait_session(self, n: int = 1, timeout: float = 10) -> Recorded:
        async with asyncio.timeout(timeout):
            while len(self.sessions) < n:
                await asyncio.sleep(0.01)
        return self.sessions[n - 1]

    # ---- the contract -----------------------------------------------------------------------

    async def _admit(self, join: session_pb2.Join, context: grpc.aio.ServicerContext) -> Interview:
        iv = self.interviews.get(join.interview_id)
        if iv is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no interview {join.interview_id!r}")
        which = join.WhichOneof("credential")
        if which == "session_credential":
            if not iv.credential or join.session_credential != iv.credential:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "the session credential is invalid or expired")
        elif which == "join_token":
            try:
                claims = self.tokens.verify(join.join_token, None, time.time())
            except TokenError as exc:
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
            if claims.interview_id != iv.id:
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, "the join token belongs to another interview")
            if iv.live is not None and iv.link == claims.nonce:  # one live session per link, as the orchestrator
                await context.abort(grpc.StatusCode.FAILED_PRECONDITION, LINK_IN_USE)
            iv.link = claims.nonce
        else:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a join token or session credential is required")
        if iv.ended:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the interview has ended")
        return iv

    async def Connect(self, request_iterator, context):  # noqa: N802 (gRPC naming)
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            return
        if not first.HasField("join"):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a Join")
        iv = await self._admit(first.join, context)
        rec = Recorded(iv.id, first.join)
        if iv.live is not None:
            iv.live.send(end=session_pb2.SessionEnd(reason="replaced"))
            iv.live.out.put_nowait(None)
        iv.live = rec
        iv.credential = "sc_" + secrets.token_urlsafe(16)
        self.sessions.append(rec)
        self.session_started.set()
        rec.send(credential=session_pb2.SessionCredential(session_id=f"s{len(self.sessions)}", credential=iv.credential))
        rec.send(video_policy=iv.policy)
        if self.frame_rates is not None:
            rec.send(frame_rates=self.frame_rates)
        rec.send(state=session_pb2.SessionState(phase_id="intro", phase_title="Introduction",
                                                mode=common_pb2.MODE_CONVERSATIONAL,
                                                status=session_pb2.INTERVIEW_ACTIVE))
        if self.greeting:
            self._speak(rec, "greeting", self.greeting)
        reader = asyncio.create_task(self._read(rec, request_iterator))
        try:
            while (msg := await rec.out.get()) is not None:
                yield msg
        finally:
            reader.cancel()
            rec.ended_at = rec.ended_at or time.time()
            rec.ended.set()
            if iv.live is rec:
                iv.live = None

    def _speak(self, rec: Recorded, gen: str, text: str) -> None:
        """Send a whole generation at once (TTS runs faster than real time), like the orchestrator."""
        samples = flite_speech(text)
        rec.playing = gen
        rec.sent[f"audio:{gen}"] = time.time()
        rec.send(caption=session_pb2.Caption(role=common_pb2.ROLE_AGENT, text=text, is_final=True, generation_id=gen))
        size = AGENT_RATE * 40 // 1000
        for i in range(0, len(samples), size):
            rec.send(audio=session_pb2.AgentAudio(
                generation_id=gen, sample_rate_hz=AGENT_RATE, text=text if i == 0 else "",
                chunk=common_pb2.AudioChunk(pcm=samples[i:i + size].tobytes(), offset_samples=i),
                last=i + size >= len(samples)))

    async def _read(self, rec: Recorded, requests) -> None:
        loud = 0
        try:
            async for msg in requests:
                kind = msg.WhichOneof("msg")
                if kind == "audio":
                    rec.audio[msg.audio.offset_samples] = msg.audio.pcm
                    rec.audio_at.append(time.time())
                    if self.echo:
                        rec.send(audio=session_pb2.AgentAudio(generation_id="echo", sample_rate_hz=16000,
                                                              chunk=msg.audio))
                    rms = float(np.sqrt(np.mean(np.frombuffer(msg.audio.pcm, "<i2").astype(np.float64) ** 2)))
                    loud = loud + 1 if rms > self.speech_rms else 0
                    if loud == 3 and self.barge_in and rec.playing:
                        self._spawn(self._barge_in(rec, rec.playing))
                elif kind == "frame":
                    rec.frames.append(msg.frame)
                elif kind == "mark":
                    rec.marks.append(msg.mark)
                    if msg.mark.finished and msg.mark.generation_id == rec.playing:
                        rec.playing = ""
                        if msg.mark.generation_id == "greeting" and self.follow_up:
                            self._spawn(self._follow_up(rec))
                elif kind == "consent":
                    rec.consents.append(msg.consent.consent)
                elif kind == "leave":
                    rec.leave = msg.leave.reason
        except (asyncio.CancelledError, grpc.aio.AioRpcError):
            pass
        finally:
            rec.ended_at = time.time()
            rec.out.put_nowait(None)

    async def _follow_up(self, rec: Recorded) -> None:
        await asyncio.sleep(1.0)  # a pause between the agent's turns
        self._speak(rec, "follow_up", self.follow_up or "")

    async def _barge_in(self, rec: Recorded, gen: str) -> None:
        rec.sent[f"pause:{gen}"] = time.time()
        rec.send(playback=session_pb2.PlaybackControl(action=session_pb2.PLAYBACK_PAUSE, generation_id=gen))
        await asyncio.sleep(self.clear_after_s)
        rec.sent[f"clear:{gen}"] = time.time()
        rec.send(playback=session_pb2.PlaybackControl(action=session_pb2.PLAYBACK_CLEAR, generation_id=gen))
        rec.playing = ""
        tone = (np.sin(np.arange(AGENT_RATE // 25) * 2 * np.pi * 440 / AGENT_RATE) * 12000).astype(np.int16)
        for i in range(self.late_chunks):  # already in flight from TTS: media must drop these
            rec.send(audio=session_pb2.AgentAudio(generation_id=gen, sample_rate_hz=AGENT_RATE,
                                                  chunk=common_pb2.AudioChunk(pcm=tone.tobytes(), offset_samples=10**7 + i)))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def start_fake(fake: FakeSession) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    session_pb2_grpc.add_SessionServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port
