"""The media side of Session.Connect: one bidi stream per candidate.

The join is verified here, before any WebRTC resource exists: the stream is opened with Join and
the first SessionCredential is awaited; a refusal comes back as a gRPC status that `JoinRefused`
maps to an HTTP status and a sentence for the candidate.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from interview.v1 import session_pb2, session_pb2_grpc

log = logging.getLogger("media.session")

UP_QUEUE = 256  # ~8 s of 32 ms audio chunks

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


@dataclass
class SessionLink:
    """An accepted session stream: the credential, what came before it, and the open call."""

    call: grpc.aio.StreamStreamCall
    credential: session_pb2.SessionCredential
    early: list[session_pb2.ServerMessage] = field(default_factory=list)
    _up: asyncio.Queue[session_pb2.ClientMessage | None] = field(default_factory=lambda: asyncio.Queue(UP_QUEUE))
    dropped_audio: int = 0
    closed: bool = False

    @staticmethod
    async def join(stub: session_pb2_grpc.SessionStub, join: session_pb2.Join, timeout_s: float) -> "SessionLink":
        """Open the stream and wait for the orchestrator to accept the join (or raise JoinRefused)."""
        up: asyncio.Queue[session_pb2.ClientMessage | None] = asyncio.Queue(UP_QUEUE)
        up.put_nowait(session_pb2.ClientMessage(join=join))
        call = stub.Connect(_drain(up))
        early: list[session_pb2.ServerMessage] = []
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        raise JoinRefused(*_UNAVAILABLE, detail="stream ended before the join was accepted")
                    if msg.HasField("credential"):
                        return SessionLink(call, msg.credential, early, up)
                    if msg.HasField("end"):
                        raise JoinRefused(410, "This interview has ended.", msg.end.reason)
                    early.append(msg)
        except grpc.aio.AioRpcError as exc:
            raise JoinRefused.from_rpc(exc) from None
        except TimeoutError:
            call.cancel()
            raise JoinRefused(*_UNAVAILABLE, detail=f"no answer to the join within {timeout_s}s") from None
        except BaseException:
            call.cancel()
            raise

    def send_audio(self, msg: session_pb2.ClientMessage) -> None:
        """Never blocks the media path: when the orchestrator is this far behind, audio is dropped (counted)."""
        if self.closed:
            return
        try:
            self._up.put_nowait(msg)
        except asyncio.QueueFull:
            self.dropped_audio += 1
            if self.dropped_audio in (1, 100) or self.dropped_audio % 1000 == 0:
                log.warning("session stream backed up: candidate audio dropped", extra={"dropped": self.dropped_audio})

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
            return
        try:
            async with asyncio.timeout(grace_s):
                while not self.call.done():
                    await asyncio.sleep(0.02)
        except (TimeoutError, grpc.aio.AioRpcError):
            pass
        self.call.cancel()


async def _drain(up: asyncio.Queue[session_pb2.ClientMessage | None]) -> AsyncIterator[session_pb2.ClientMessage]:
    while (msg := await up.get()) is not None:
        yield msg
