"""The session stream's uplink: audio and control always before video frames; frames on their own
small queue, oldest dropped first, never taking audio's room; a refused join leaves no task behind."""
from __future__ import annotations

import asyncio

import grpc
import pytest

from interview.v1 import common_pb2, session_pb2, session_pb2_grpc
from services.media.session_link import FRAME_QUEUE, UP_QUEUE, JoinRefused, SessionLink, UpQueues
from services.media.video import FrameGate


def audio(i: int) -> session_pb2.ClientMessage:
    return session_pb2.ClientMessage(audio=common_pb2.AudioChunk(pcm=b"\0\0" * 512, offset_samples=512 * i))


def frame(i: int) -> session_pb2.ClientMessage:
    return session_pb2.ClientMessage(frame=common_pb2.VideoFrame(jpeg=b"\xff\xd8" + bytes(10), time_ms=i))


async def take(up: UpQueues, n: int) -> list[session_pb2.ClientMessage]:
    out = []
    it = up.drain()
    async with asyncio.timeout(1):
        for _ in range(n):
            out.append(await anext(it))
    return out


async def test_audio_goes_before_every_queued_frame_and_old_frames_are_dropped_first() -> None:
    up = UpQueues()
    for i in range(10):
        up.put_frame(frame(i))
        up.main.put_nowait(audio(i))
    msgs = await take(up, 10 + FRAME_QUEUE)
    kinds = [m.WhichOneof("msg") for m in msgs]
    assert kinds == ["audio"] * 10 + ["frame"] * FRAME_QUEUE
    assert [m.frame.time_ms for m in msgs[10:]] == list(range(10 - FRAME_QUEUE, 10))  # the newest survive
    assert up.dropped_frames == 10 - FRAME_QUEUE


async def test_frames_never_take_audios_room() -> None:
    up = UpQueues()
    for i in range(100):
        up.put_frame(frame(i))
    for i in range(UP_QUEUE):
        up.main.put_nowait(audio(i))  # the whole audio queue is still free for audio
    assert up.main.full() and len(up.frames) == FRAME_QUEUE


async def test_a_waiting_reader_wakes_for_a_frame_then_audio_still_overtakes_queued_frames() -> None:
    up = UpQueues()
    it = up.drain()
    pending = asyncio.ensure_future(anext(it))
    await asyncio.sleep(0.01)
    up.put_frame(frame(1))
    assert (await asyncio.wait_for(pending, 1)).WhichOneof("msg") == "frame"
    up.put_frame(frame(2))
    up.main.put_nowait(audio(0))
    assert (await asyncio.wait_for(anext(it), 1)).WhichOneof("msg") == "audio"
    up.main.put_nowait(None)  # close: the stream ends, a frame still queued is not worth waiting for
    try:
        await asyncio.wait_for(anext(it), 1)
        raise AssertionError("the drain should end after None")
    except StopAsyncIteration:
        pass


def test_frame_gate_zero_rate_takes_nothing_and_a_new_rate_applies_at_once() -> None:
    gate = FrameGate(2.0)
    assert gate.take(0.0, True) and not gate.take(0.3, True) and gate.take(0.5, True)
    gate.set_rate(0)
    assert not any(gate.take(t / 10, True) for t in range(10, 50))
    gate.set_rate(1.0)
    assert gate.take(5.0, True) and not gate.take(5.9, True) and gate.take(6.0, True)
    assert not gate.take(10.0, False)  # no consent, no frame


def test_end_stops_a_waiting_drain_and_drops_what_waits() -> None:
    async def run() -> None:
        up = UpQueues()
        it = up.drain()
        reader = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.01)
        up.put_frame(frame(1))
        up.end()
        with pytest.raises(StopAsyncIteration):
            async with asyncio.timeout(1):
                await reader
                await anext(it)
    asyncio.run(run())


class RefusingSession(session_pb2_grpc.SessionServicer):
    async def Connect(self, request_iterator, context):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "the interview has ended")
        yield session_pb2.ServerMessage()  # pragma: no cover (never reached)


async def test_a_refused_join_leaves_no_request_reader_pending() -> None:
    # grpc.aio's cancel() stops a call's request reader only while the call is live: a join the
    # orchestrator refused left it waiting on the uplink forever
    server = grpc.aio.server()
    session_pb2_grpc.add_SessionServicer_to_server(RefusingSession(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for _ in range(3):
                with pytest.raises(JoinRefused):
                    await SessionLink.join(session_pb2_grpc.SessionStub(channel), session_pb2.Join(), timeout_s=5)
            await asyncio.sleep(0.1)
            readers = [t for t in asyncio.all_tasks() if "_consume_request_iterator" in repr(t.get_coro())]
            assert readers == []
    finally:
        await server.stop(0)
