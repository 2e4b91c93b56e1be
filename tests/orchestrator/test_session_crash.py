"""A turn cut off by a crash is closed as an incomplete transcript entry on the next join, on
another instance: real orchestrator processes (SIGKILL mid-turn), real AI services, real Redis."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from interview.v1 import common_pb2, interviews_pb2
from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.store.store import Fenced, InterviewStore
from tests.orchestrator.conftest import API_KEY, orchestrator_env
from tests.orchestrator.test_session_loop import LONG_GREETING
from tests.orchestrator.session_support import Candidate, plan, speech
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(90)



@pytest.fixture
def instances(redis_server: RedisServer, ai: dict[str, ServiceProcess], prefix: str) -> Iterator[list[ServiceProcess]]:
    """Two orchestrator instances on one Redis (the second is started by the test, after the crash)."""
    env = orchestrator_env(redis_server.url, prefix, **{f"{k.upper()}_ADDR": p.address for k, p in ai.items()},
                           ORCHESTRATOR_COMMANDS="false")
    procs = [ServiceProcess("orchestrator", env={**env, "ORCHESTRATOR_INSTANCE_ID": f"crash-{i}"}) for i in (1, 2)]
    procs[0].start()
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[InterviewStore]:
    r = aioredis.Redis.from_url(redis_server.url)
    yield InterviewStore(r, prefix=prefix, retention_s=3600)
    await r.aclose()


async def _create(address: str, greeting: str) -> tuple[str, str]:
    async with InterviewsClient(address, API_KEY) as c:
        created = await c.create(plan=plan(greeting), candidate_name="Ada")
    return created.interview.id, created.join_token


async def _rejoin(proc: ServiceProcess, iid: str, credential: str) -> str:
    """Join the second instance with the session credential; it closes the cut-off turns first,
    then picks the conversation up. Returns what the agent said first."""
    proc.start()
    async with Candidate(proc.address, iid, credential=credential, instant_playback=True) as cand:
        await cand.wait_generations(1, timeout=10)
        finals = lambda: [c.text for c in cand.of("caption") if c.role == common_pb2.ROLE_AGENT and c.is_final]
        await cand.wait_for(finals, what="the first agent turn heard")
        return finals()[0]


async def test_agent_turn_cut_off_by_a_crash_is_closed_incomplete_on_another_instance(
        instances: list[ServiceProcess], store: InterviewStore) -> None:
    first, second = instances
    iid, token = await _create(first.address, LONG_GREETING)
    async with Candidate(first.address, iid, token=token) as cand:
        gid = await cand.wait_generations(1, timeout=10)
        g = cand.generations[gid]
        await cand.wait_for(lambda: g.played >= 16000 * 2, what="2 s of the greeting played")
        credential = cand.of("credential")[0].credential
        first.kill()  # SIGKILL: no shutdown code runs
    assert await store.transcript(iid) == []  # nothing written: the greeting was still being heard
    said = await _rejoin(second, iid, credential)
    entries = await store.transcript(iid)
    cut = entries[0]
    # welcomed back, not greeted again; the cut-off greeting is not repeated, the open question is
    assert said == "Welcome back, Ada. We got cut off. Tell me about a project you liked.", said
    assert cut.role == common_pb2.ROLE_AGENT and cut.incomplete and not cut.interrupted, entries
    assert 10 < len(cut.text) < len(LONG_GREETING) - 40, cut.text  # what was heard, not the whole text
    assert LONG_GREETING.startswith(cut.text.rstrip(".,")), cut.text
    assert cut.end_time.ToNanoseconds() >= cut.start_time.ToNanoseconds() > 0
    assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))
    assert not await store.redis.exists(store.keys.inflight(iid))


async def test_utterance_in_progress_at_a_crash_is_closed_incomplete(
        instances: list[ServiceProcess], store: InterviewStore) -> None:
    first, second = instances
    iid, token = await _create(first.address, "Hello there.")
    async with Candidate(first.address, iid, token=token, instant_playback=True) as cand:
        greeting = await cand.wait_generations(1, timeout=10)
        await cand.wait_played(greeting)
        credential = cand.of("credential")[0].credential
        speaking = asyncio.create_task(cand.say(speech("lecture_60s_16k.wav")[: 16000 * 8]))  # keeps talking
        await cand.wait_for(lambda: any(c.role == common_pb2.ROLE_USER and not c.is_final and len(c.text) > 5
                                        for c in cand.of("caption")), timeout=15, what="an interim caption")
        await asyncio.sleep(0.5)  # the marker is written at most every 200 ms
        first.kill()
        speaking.cancel()
    said = await _rejoin(second, iid, credential)
    assert said == "Welcome back, Ada. We got cut off. Tell me about a project you liked.", said
    entries = await store.transcript(iid)
    assert [e.role for e in entries[:2]] == [common_pb2.ROLE_AGENT, common_pb2.ROLE_USER], entries
    assert entries[0].text.startswith("Hello") and not entries[0].incomplete
    assert entries[1].incomplete and entries[1].text, entries[1]


async def test_in_flight_marker_is_fenced_and_closed_once(store: InterviewStore, orchestrator: ServiceProcess) -> None:
    iid, _ = await _create(orchestrator.address, "Hi.")
    old = await store.acquire_lease(iid, "a", 10_000)
    written = interviews_pb2.TranscriptEntry(interview_id=iid, role=common_pb2.ROLE_USER, text="stored", entry_id="x-1")
    cut = interviews_pb2.TranscriptEntry(interview_id=iid, role=common_pb2.ROLE_AGENT, text="half", incomplete=True,
                                         entry_id="x-2")
    await store.append_transcript(written, epoch=old)
    await store.set_inflight(iid, old, [written, cut])
    new = await store.acquire_lease(iid, "b", 10_000, force=True)
    with pytest.raises(Fenced):  # the replaced owner can no longer change what the new one sees
        await store.set_inflight(iid, old, [])
    closed = await store.close_inflight(iid, new)
    assert [e.entry_id for e in closed] == ["x-2"]  # the entry that did get written is not duplicated
    assert await store.close_inflight(iid, new) == []
    entries = await store.transcript(iid)
    assert [(e.text, e.incomplete) for e in entries] == [("stored", False), ("half", True)]
    assert entries[1].HasField("end_time")
