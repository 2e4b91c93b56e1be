"""Session.Connect join rules and bad input: statuses and messages a person understands, a newer
stream replacing an older one, reconnecting with the session credential."""
from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from interview.v1 import common_pb2, interviews_pb2, session_pb2, session_pb2_grpc
from tests.orchestrator.session_support import Candidate, Orchestrator

pytestmark = pytest.mark.timeout(60)


async def _call(orch: Orchestrator, *msgs: session_pb2.ClientMessage) -> tuple[grpc.StatusCode, str]:
    async with grpc.aio.insecure_channel(orch.address) as ch:
        call = session_pb2_grpc.SessionStub(ch).Connect(iter(msgs))
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, ""


def join(iid: str, **kw: object) -> session_pb2.ClientMessage:
    return session_pb2.ClientMessage(join=session_pb2.Join(interview_id=iid, **kw))  # type: ignore[arg-type]


async def test_join_errors(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    other, other_token = await orch.create()
    audio = session_pb2.ClientMessage(audio=common_pb2.AudioChunk(pcm=b"\0\0", offset_samples=0))
    code, msg = await _call(orch, audio)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "first message must be a Join" in msg
    code, msg = await _call(orch, join(iid, join_token="jt1.bad.sig"))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "signature" in msg
    code, msg = await _call(orch, join(iid, join_token=other_token))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "another interview" in msg
    code, msg = await _call(orch, join(iid))
    assert code == grpc.StatusCode.UNAUTHENTICATED and "join_token" in msg
    ghost = "iv_" + "0" * 20
    ghost_token, _ = orch.tokens.issue(ghost, time.time(), 60)
    code, msg = await _call(orch, join(ghost, join_token=ghost_token))
    assert code == grpc.StatusCode.NOT_FOUND
    code, msg = await _call(orch, join(iid, join_token=token, audio_format=common_pb2.AudioFormat(sample_rate_hz=44100)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "16000" in msg
    await orch.api.end(interviews_pb2.EndInterviewRequest(interview_id=other, reason="withdrawn"))
    code, msg = await _call(orch, join(other, join_token=other_token))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "withdrawn" in msg


async def test_backwards_offset_is_rejected(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    chunk = lambda off: session_pb2.ClientMessage(audio=common_pb2.AudioChunk(pcm=b"\0\0" * 512, offset_samples=off))
    async with grpc.aio.insecure_channel(orch.address) as ch:
        q: asyncio.Queue[session_pb2.ClientMessage | None] = asyncio.Queue()
        for m in (join(iid, join_token=token), chunk(1024), chunk(0)):
            q.put_nowait(m)

        async def reqs():  # type: ignore[no-untyped-def]
            while (m := await q.get()) is not None:
                yield m
        call = session_pb2_grpc.SessionStub(ch).Connect(reqs())
        with pytest.raises(grpc.aio.AioRpcError) as err:
            async for _ in call:
                pass
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "went backwards" in (err.value.details() or "")


async def test_newer_session_replaces_older_and_credential_reconnects(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as first:
        await first.wait_for(lambda: first.of("credential"), what="credential")
        credential = first.of("credential")[0].credential
        await first.wait_generations(1)
        async with Candidate(orch.address, iid, credential=credential, instant_playback=True) as second:
            await first.wait_for(lambda: [e for e in first.of("end") if e.reason == "replaced"], what="replaced")
            await second.wait_generations(1)
            assert not second.of("end")
    snap = await orch.store.get(iid)
    assert snap.interview.status == session_pb2.INTERVIEW_ACTIVE  # same instance: same owner, same epoch


async def test_end_interview_ends_the_live_session_promptly(orch: Orchestrator) -> None:
    """The session's loops stop when cancelled even while redis-py blocks in XREAD (it can turn that
    cancellation into a ConnectionError, which the loops retry): the shutdown does not hang."""
    iid, token = await orch.create()
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        await cand.wait_generations(1)
        await asyncio.sleep(1.5)  # the control loop is in its blocking read
        t0 = time.monotonic()
        await orch.api.end(interviews_pb2.EndInterviewRequest(interview_id=iid, reason="done"))
        await cand.wait_for(lambda: [e for e in cand.of("end") if e.reason == "done"], timeout=5, what="SessionEnd")
        assert time.monotonic() - t0 < 3
    await orch.transcript(iid)
    assert iid not in orch.servicer.live
