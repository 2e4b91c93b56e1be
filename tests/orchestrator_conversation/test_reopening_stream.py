"""ReopeningStream's queue is bounded for audio and for control messages: audio beyond
`max_pending` is dropped (real time), control messages have headroom and beyond it are dropped
and counted, never queued without end. A call the service ended leaves no task behind."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc

from interview.v1 import vad_pb2, vad_pb2_grpc
from services.common.retry import Backoff
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


class BreakingVad(vad_pb2_grpc.VadServicer):
    """A service whose streams fail after the first message (a crash, a restart behind a proxy)."""

    async def Detect(self, request_iterator, context):
        async for _ in request_iterator:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        yield vad_pb2.DetectResponse()  # pragma: no cover (never reached)


def request_readers() -> list[asyncio.Task]:
    """grpc.aio's per-call tasks that read our request iterator."""
    return [t for t in asyncio.all_tasks() if "_consume_request_iterator" in repr(t.get_coro())]


async def test_a_call_the_service_ended_leaves_no_request_reader_pending() -> None:
    # grpc.aio's cancel() stops a call's request reader only while the call is live: after a
    # service ends it, the reader waited on our queue forever ("Task was destroyed but it is
    # pending!" once garbage-collected, one per reopen). Closing the queue ends it.
    server = grpc.aio.server()
    vad_pb2_grpc.add_VadServicer_to_server(BreakingVad(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    first = lambda: [vad_pb2.DetectRequest(config=vad_pb2.VadConfig(sample_rate_hz=16000))]  # noqa: E731
    stream = ReopeningStream[vad_pb2.DetectRequest, vad_pb2.DetectResponse](
        "vad", vad_pb2_grpc.VadStub(channel).Detect, first, lambda _: asyncio.sleep(0),
        backoff=Backoff(initial_s=0.01, factor=1.0, cap_s=0.01, attempts=1_000_000))
    task = asyncio.create_task(stream.run())
    try:
        async with asyncio.timeout(10):
            while stream.reopens < 5:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        assert len(request_readers()) <= 1, request_readers()  # only the current call's
    finally:
        stream.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await channel.close()
        await server.stop(0)
