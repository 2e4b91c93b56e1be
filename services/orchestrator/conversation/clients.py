"""Stream wrappers for the AI services, as the conversation loop needs them.

- `ReopeningStream` (VAD, STT): one long bidi stream per session that is reopened when it breaks
  (service restarted, network blip), re-sending its first messages built *at reopen time*, so the
  current params and mode are re-applied. Audio is real time: while a stream is down or more than
  `max_pending` messages behind, audio is dropped and counted (the candidate cannot be slowed
  down); control messages (FINALIZE, params) are queued.
- `generate` (LLM) and `TtsCall` (TTS): one call per agent generation, cancelled on barge-in.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import grpc

from services.common.retry import Backoff
from services.common.tasks import WorkQueue

log = logging.getLogger("conversation.clients")

Req = TypeVar("Req")
Resp = TypeVar("Resp")

CONTROL_HEADROOM = 64  # room for control messages beyond max_pending audio


def end_requests(queue: WorkQueue[Any]) -> None:
    """End a finished call's request iterator. grpc.aio's `cancel()` stops the task reading it only
    while the call is live; after the service has ended the call, that task would wait on the queue
    forever (and be garbage-collected pending)."""
    queue.drop_pending()
    queue.close()


class ReopeningStream(Generic[Req, Resp]):
    def __init__(self, name: str, open_call: Callable[[AsyncIterator[Req]], Any],
                 first_messages: Callable[[], list[Req]], on_response: Callable[[Resp], Awaitable[None]],
                 on_reopen: Callable[[], Awaitable[None]] | None = None, max_pending: int = 256,
                 backoff: Backoff = Backoff(initial_s=0.05, factor=2.0, cap_s=1.0, attempts=1_000_000)):
        self.name = name
        self._open = open_call
        self._first = first_messages
        self._on_response = on_response
        self._on_reopen = on_reopen
        self._max_pending = max_pending
        self._backoff = backoff
        self._queue: WorkQueue[Req] | None = None
        self.connected = asyncio.Event()
        self.dropped = 0
        self.dropped_control = 0
        self.reopens = 0
        self.responses = 0
        self._closing = False

    def send_audio(self, req: Req) -> bool:
        """Real-time audio: dropped (and counted) while down or too far behind."""
        q = self._queue
        if q is None or q.closed or not self.connected.is_set() or q.qsize() >= self._max_pending:
            self.dropped += 1
            return False
        q.put_nowait(req)
        return True

    def send(self, req: Req) -> None:
        """A control message (FINALIZE, params): not dropped while connected (it has headroom
        beyond the audio); lost with a broken stream, where `first_messages`/`on_reopen` restore
        what matters."""
        q = self._queue
        if q is None or q.closed:
            return
        try:
            q.put_nowait(req)
        except asyncio.QueueFull:
            self.dropped_control += 1
            log.error("control message dropped: the stream is stuck", extra={"stream": self.name})

    def close(self) -> None:
        """Half-close: the service finishes what it has, then the stream ends (not reopened)."""
        self._closing = True
        if self._queue is not None:
            self._queue.close()

    async def run(self) -> None:
        """Owned by the session's task group; returns after `close`, or is cancelled with it."""
        delays = self._backoff.delays()
        first = True
        while not self._closing:
            queue: WorkQueue[Req] = WorkQueue(self._max_pending + CONTROL_HEADROOM)
            for msg in self._first():
                queue.put_nowait(msg)
            self._queue = queue
            call = self._open(aiter(queue))
            try:
                self.connected.set()
                if not first:
                    self.reopens += 1
                    log.warning("stream reopened", extra={"stream": self.name})
                    if self._on_reopen is not None:
                        await self._on_reopen()
                first = False
                async for resp in call:
                    delays = self._backoff.delays()  # a working stream resets the backoff
                    self.responses += 1
                    await self._on_response(resp)
                if self._closing:
                    return
                log.warning("stream ended by the service; reopening", extra={"stream": self.name})
            except grpc.aio.AioRpcError as exc:
                if self._closing:
                    return
                log.warning("stream broke; reopening", extra={"stream": self.name, "code": exc.code().name,
                                                               "detail": (exc.details() or "")[:200]})
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    raise  # our bug or bad input: reopening would fail the same way
            finally:
                self.connected.clear()
                self._queue = None
                call.cancel()
                end_requests(queue)
            await asyncio.sleep(next(delays, self._backoff.cap_s))


class TtsCall:
    """One Tts.Synthesize call for one generation: text in as the LLM produces it, audio out."""

    def __init__(self, stub: Any, config: Any, request_cls: Any, timeout_s: float = 120.0):
        self._queue: WorkQueue[Any] = WorkQueue(256)
        self._req = request_cls
        self._queue.put_nowait(request_cls(config=config))
        self.call = stub.Synthesize(aiter(self._queue), timeout=timeout_s)

    async def text(self, text: str, trace: Any = None) -> None:
        if self._queue.closed:
            return  # cancelled: the LLM's last words go nowhere
        msg = self._req()
        msg.text.text = text
        if trace is not None:
            msg.text.trace.CopyFrom(trace)
        await self._queue.put(msg)

    async def end(self) -> None:
        if self._queue.closed:
            return
        msg = self._req()
        msg.end.SetInParent()
        await self._queue.put(msg)
        self._queue.close()

    def cancel(self) -> None:
        self.call.cancel()
        end_requests(self._queue)
