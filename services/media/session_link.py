"""The media side of Session.Connect: one bidi stream per candidate.

The join is verified here, before any WebRTC resource exists: the stream is opened with Join and
the first SessionCredential is awaited; a refusal comes back as a gRPC status that `JoinRefused`
maps to an HTTP status and a sentence for the candidate.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from interview.v1 import session_pb2, session_pb2_grpc
from services.common import metrics

log = logging.getLogger("media.session")

UP_QUEUE = 256  # ~8 s of 32 ms audio chunks
FRAME_QUEUE = 4  # video frames wait here, apart: only sent when no audio or control is waiting

# gRPC status of a refused join -> (HTTP status, what the candidate reads)
_HTTP = {
    grpc.StatusCode.UNAUTHENTICATED: (401, "This interview link is invalid or has expired. Ask for a new link."),
    grpc.StatusCode.PERMISSION_DENIED: (403, "This link does not give access to this interview."),
    grpc.StatusCode.NOT_FOUND: (404, "There is no such interview. Check the link you were sent."),
    grpc.StatusCode.FAILED_PRECONDITION: (410, "This interview has ended."),
    grpc.StatusCode.INVALID_ARGUMENT: (400, "The interview service rejected the request."),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (503, "The interview service is busy. Please try again in a minute."),
}
_LINK_IN_USE = (409, "This interview is already open in another window or on another device. Close it there "
                     "first (this page can join once that session has ended), or ask for a new link.")
_UNAVAILABLE = (503, "The interview service is not reachable right now. Please try again in a minute.")


class JoinRefused(Exception):
    def __init__(self, http_status: int, message: str, detail: str = ""):
        super().__init__(message)
        self.http_status, self.message, self.detail = http_status, message, detail

    @staticmethod
    def from_rpc(exc: grpc.aio.AioRpcError) -> "JoinRefused":
        status, message = _HTTP.get(exc.code(), _UNAVAILABLE)
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "already in use" in (exc.details() or ""):
            status, message = _LINK_IN_USE
        return JoinRefused(status, message, f"{exc.code().name}: {exc.details()}")


class UpQueues:
    """What goes up the session stream, in two bounded queues: audio and control first, always;
    video frames only when nothing else waits, and the oldest frame is dropped when a newer one
    finds the (small) frame queue full. A frame therefore never delays or pushes out candidate
    audio, and a stale frame is never sent when a newer one exists."""

    def __init__(self, size: int = UP_QUEUE, frames: int = FRAME_QUEUE):
        self.main: asyncio.Queue[session_pb2.ClientMessage | None] = asyncio.Queue(size)
        self.frames: deque[session_pb2.ClientMessage] = deque(maxlen=frames)
        self.dropped_frames = 0
        self._frame_ready = asyncio.Event()

    def put_frame(self, msg: session_pb2.ClientMessage) -> None:
        if len(self.frames) == self.frames.maxlen:
            self.dropped_frames += 1
        self.frames.append(msg)
        self._frame_ready.set()

    def end(self) -> None:
        """Stop `drain` now, dropping what waits: the call is over. (grpc.aio's cancel() stops the
        task reading `drain` only while the call is live; otherwise it would wait here forever.)"""
        while not self.main.empty():
            self.main.get_nowait()
        self.frames.clear()
        self.main.put_nowait(None)

    async def drain(self) -> AsyncIterator[session_pb2.ClientMessage]:
        while True:
            if not self.main.empty():
                msg = self.main.get_nowait()
            elif self.frames:
                msg = self.frames.popleft()
            else:
                self._frame_ready.clear()
                getter = asyncio.ensure_future(self.main.get())
                frame = asyncio.ensure_future(self._frame_ready.wait())
                try:
                    await asyncio.wait((getter, frame), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    frame.cancel()
                    if not getter.done():
                        getter.cancel()
                if not getter.done() or getter.cancelled():
                    continue  # a frame arrived: loop, audio still goes first
                msg = getter.result()
            if msg is None:
                return
            yield msg


@dataclass
class SessionLink:
    """An accepted session stream: the credential, what came before it, and the open call."""

    call: grpc.aio.StreamStreamCall
    credential: session_pb2.SessionCredential
    early: list[session_pb2.ServerMessage] = field(default_factory=list)
    uplink: UpQueues = field(default_factory=UpQueues)
    dropped_audio: int = 0
    closed: bool = False

    @property
    def _up(self) -> asyncio.Queue[session_pb2.ClientMessage | None]:
        return self.uplink.main

    @property
    def dropped_frames(self) -> int:
        return self.uplink.dropped_frames

    @staticmethod
    async def join(stub: session_pb2_grpc.SessionStub, join: session_pb2.Join, timeout_s: float) -> "SessionLink":
        """Open the stream and wait for the orchestrator to accept the join (or raise JoinRefused)."""
        uplink = UpQueues()
        uplink.main.put_nowait(session_pb2.ClientMessage(join=join))
        call = stub.Connect(uplink.drain())
        early: list[session_pb2.ServerMessage] = []
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        raise JoinRefused(*_UNAVAILABLE, detail="stream ended before the join was accepted")
                    if msg.HasField("credential"):
                        return SessionLink(call, msg.credential, early, uplink)
                    if msg.HasField("end"):
                        raise JoinRefused(410, "This interview has ended.", msg.end.reason)
                    early.append(msg)
        except grpc.aio.AioRpcError as exc:
            uplink.end()
            raise JoinRefused.from_rpc(exc) from None
        except TimeoutError:
            call.cancel()
            uplink.end()
            raise JoinRefused(*_UNAVAILABLE, detail=f"no answer to the join within {timeout_s}s") from None
        except BaseException:
            call.cancel()
            uplink.end()
            raise

    def send_audio(self, msg: session_pb2.ClientMessage) -> None:
        """Never blocks the media path: when the orchestrator is this far behind, audio is dropped (counted)."""
        if self.closed:
            return
        try:
            self._up.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped_audio += 1
            metrics.MEDIA_DROPPED_FRAMES.labels("candidate_audio_backlog").inc()
            if self.dropped_audio in (1, 100) or self.dropped_audio % 1000 == 0:
                log.warning("session stream backed up: candidate audio dropped", extra={"dropped": self.dropped_audio})

    def send_frame(self, msg: session_pb2.ClientMessage) -> None:
        """A video frame: never waits and never takes audio's room (see UpQueues)."""
        if not self.closed:
            self.uplink.put_frame(msg)

    async def send(self, msg: session_pb2.ClientMessage) -> None:
        """Control messages (marks, consent, leave) wait for room instead of being dropped."""
        if not self.closed:
            await self._up.put(msg)

    async def messages(self) -> AsyncIterator[session_pb2.ServerMessage]:
        for msg in self.early:
            yield msg
        self.early.clear()
        while (msg := await self.call.read()) is not grpc.aio.EOF:  # read(), as in join(): styles can't mix
            yield msg

    async def close(self, reason: str, grace_s: float = 1.0) -> None:
        """Leave (unless the orchestrator ended it), half-close, give it `grace_s` to finish, then cancel."""
        if self.closed:
            return
        if reason and not self.call.done():
            try:
                self._up.put_nowait(session_pb2.ClientMessage(leave=session_pb2.Leave(reason=reason)))
            except asyncio.QueueFull:
                pass
        self.closed = True
        try:
            self._up.put_nowait(None)
        except asyncio.QueueFull:
            self.call.cancel()
            self.uplink.end()
            return
        try:
            async with asyncio.timeout(grace_s):
                while not self.call.done():
                    await asyncio.sleep(0.02)
        except (TimeoutError, grpc.aio.AioRpcError):
            pass
        self.call.cancel()

