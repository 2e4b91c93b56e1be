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
