"""ReopeningStream's queue is bounded for audio and for control messages: audio beyond
`max_pending` is dropped (real time), control messages have headroom and beyond it are dropped
and counted, never queued without end."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from services.orchestrator.conversation.clients import CONTROL_HEADROOM, ReopeningStream


class StuckCall:
    """A service that never reads its requests nor answers."""

    def __init__(self, requests: AsyncIterator[str]):
        self.requests = requests
        self._never = asyncio.Event()

    def __aiter__(self) -> "StuckCall":
        return self

    async def __anext__(self) -> str:
        await self._never.wait()
        raise StopAsyncIteration

    def cancel(self) -> None:
        self._never.set()


async def test_audio_and_control_are_bounded_while_the_service_does_not_read() -> None:
    async def ignore(_: str) -> None:
        return None

    stream = ReopeningStream[str, str]("stt", StuckCall, lambda: ["config"], ignore, max_pending=8)
    task = asyncio.create_task(stream.run())
    await asyncio.wait_for(stream.connected.wait(), 1)
    sent_audio = sum(stream.send_audio(f"a{i}") for i in range(100))
    assert sent_audio == 8 - 1 and stream.dropped == 100 - sent_audio  # the config holds one slot
    for i in range(CONTROL_HEADROOM + 10):
        stream.send(f"c{i}")
    assert stream.dropped_control == 10
    queue = stream._queue
    assert queue is not None and queue.qsize() == 8 + CONTROL_HEADROOM
    stream.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class BreakingCall:
    """A call that reads its requests in its own task (as grpc.aio does) and breaks with
    UNAVAILABLE (the service died) once the first request has arrived."""

    opened: list["BreakingCall"] = []

    def __init__(self, requests: AsyncIterator[str]):
        self.got: list[str] = []
        self.first = asyncio.Event()
        self.reader = asyncio.create_task(self._read(requests))
        BreakingCall.opened.append(self)

    async def _read(self, requests: AsyncIterator[str]) -> None:
        async for r in requests:
            self.got.append(r)
            self.first.set()

    def __aiter__(self) -> "BreakingCall":
        return self

    async def __anext__(self) -> str:
        import grpc
        await self.first.wait()
        if len(BreakingCall.opened) == 1:
            raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "gone")
        await asyncio.Event().wait()
        raise StopAsyncIteration

    def cancel(self) -> None:
        pass  # a broken call: nothing to cancel


async def test_a_broken_streams_request_reader_ends_with_it() -> None:
    """The request iterator of a broken call ends (no task left pending on the old queue, which
    asyncio would report as 'Task was destroyed but it is pending')."""
    from services.common.retry import Backoff

    async def ignore(_: str) -> None:
        return None

    BreakingCall.opened.clear()
    stream = ReopeningStream[str, str]("vad", BreakingCall, lambda: ["config"], ignore,
                                       backoff=Backoff(initial_s=0.01, factor=1.0, cap_s=0.01, attempts=100))
    task = asyncio.create_task(stream.run())
    for _ in range(200):
        if len(BreakingCall.opened) == 2:
            break
        await asyncio.sleep(0.01)
    first = BreakingCall.opened[0]
    await asyncio.wait_for(first.reader, 1)  # ended, not pending
    assert first.got == ["config"] and stream.reopens == 1
    stream.close()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    for call in BreakingCall.opened:
        call.reader.cancel()
