"""Turns cut off by an orchestrator crash reach the transcript even when the candidate never comes
back: EndInterview on another instance closes them, and so does the sweeper after its grace.
Real orchestrator processes (SIGKILL mid-utterance), real AI services, real Redis."""
from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.store.store import InterviewStore
from tests.orchestrator.conftest import API_KEY, orchestrator_env
from tests.orchestrator.session_support import Candidate, plan, speech
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(90)
LEASE_MS = 2000


def _instances(redis_server: RedisServer, ai: dict[str, ServiceProcess], prefix: str, grace_s: str
               ) -> list[ServiceProcess]:
    env = orchestrator_env(redis_server.url, prefix, **{f"{k.upper()}_ADDR": p.address for k, p in ai.items()},
                           ORCHESTRATOR_COMMANDS="false", ORCHESTRATOR_LEASE_TTL_MS=str(LEASE_MS),
                           ORCHESTRATOR_SWEEP_INTERVAL_S="0.3", ORCHESTRATOR_ABANDONED_GRACE_S=grace_s)
    return [ServiceProcess("orchestrator", env={**env, "ORCHESTRATOR_INSTANCE_ID": f"abandon-{i}"}) for i in (1, 2)]


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[InterviewStore]:
    r = aioredis.Redis.from_url(redis_server.url)
    yield InterviewStore(r, prefix=prefix, retention_s=3600)
    await r.aclose()


async def _crash_mid_utterance(first: ServiceProcess) -> str:
    """Start an interview, let the candidate talk, SIGKILL the orchestrator mid-utterance."""
    async with InterviewsClient(first.address, API_KEY) as c:
        created = await c.create(plan=plan("Hello there."), candidate_name="Ada")
    iid = created.interview.id
    async with Candidate(first.address, iid, token=created.join_token, instant_playback=True) as cand:
        await cand.wait_played(await cand.wait_generations(1, timeout=10))
        speaking = asyncio.create_task(cand.say(speech("lecture_60s_16k.wav")[: 16000 * 8]))
        await cand.wait_for(lambda: any(c.role == common_pb2.ROLE_USER and not c.is_final and len(c.text) > 5
                                        for c in cand.of("caption")), timeout=15, what="an interim caption")
        await asyncio.sleep(0.5)  # the marker is written at most every 200 ms
        first.kill()
        speaking.cancel()
    return iid


async def _wait_cut(store: InterviewStore, iid: str, timeout: float) -> list[interviews_pb2.TranscriptEntry]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entries = await store.transcript(iid)
        if any(e.incomplete for e in entries):
            return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"no incomplete entry within {timeout} s: {await store.transcript(iid)}")


def _check(entries: list[interviews_pb2.TranscriptEntry]) -> None:
    assert [e.role for e in entries[:2]] == [common_pb2.ROLE_AGENT, common_pb2.ROLE_USER], entries
    assert entries[1].incomplete and entries[1].text, entries[1]
    assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))


def _two_instances(redis_server: RedisServer, ai: dict[str, ServiceProcess], prefix: str,
                   grace_s: str) -> Iterator[list[ServiceProcess]]:
    """Two orchestrators with this abandoned grace; the first started, both killed at the end."""
    procs = _instances(redis_server, ai, prefix, grace_s=grace_s)
    procs[0].start()
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()


@pytest.fixture
def long_grace(redis_server: RedisServer, ai: dict[str, ServiceProcess], prefix: str) -> Iterator[list[ServiceProcess]]:
    yield from _two_instances(redis_server, ai, prefix, "3600")


async def test_end_interview_on_another_instance_closes_the_cut_turn(
        long_grace: list[ServiceProcess], store: InterviewStore) -> None:
    first, second = long_grace
    iid = await _crash_mid_utterance(first)
    second.start()
    async with InterviewsClient(second.address, API_KEY) as c:
        await c.end(iid, reason="candidate gone")
    # the dead owner's lease expires within LEASE_MS; the sweeper, woken by the end, closes it then
    t0 = time.monotonic()
    entries = await _wait_cut(store, iid, timeout=LEASE_MS / 1000 + 3)
    _check(entries)
    assert not await store.redis.exists(store.keys.inflight(iid))
    assert not await store.redis.zscore(store.keys.inflight_index, iid)
    from tests.faults.conftest import record
    record("orchestrator_sigkill_end_elsewhere", closed_after_end_s=round(time.monotonic() - t0, 3),
           incomplete_entries=sum(e.incomplete for e in entries))


@pytest.fixture
def short_grace(redis_server: RedisServer, ai: dict[str, ServiceProcess], prefix: str) -> Iterator[list[ServiceProcess]]:
    yield from _two_instances(redis_server, ai, prefix, "1")


async def test_sweeper_closes_a_session_abandoned_without_a_rejoin(
        short_grace: list[ServiceProcess], store: InterviewStore) -> None:
    first, second = short_grace
    iid = await _crash_mid_utterance(first)
    second.start()  # any instance sweeps; the interview is still ACTIVE, nobody ends it
    entries = await _wait_cut(store, iid, timeout=LEASE_MS / 1000 + 5)
    _check(entries)
    snap = await store.get(iid)
    assert snap.interview.status == session_pb2.INTERVIEW_ACTIVE
    assert not await store.redis.exists(store.keys.inflight(iid))


async def test_end_with_no_session_closes_the_marker_at_once(store: InterviewStore, orchestrator: ServiceProcess) -> None:
    """No lease held: EndInterview itself writes the marker's entries before it answers."""
    async with InterviewsClient(orchestrator.address, API_KEY) as c:
        created = await c.create(plan=plan("Hi."), candidate_name="Ada")
        iid = created.interview.id
        epoch = await store.acquire_lease(iid, "dead", 10_000)
        cut = interviews_pb2.TranscriptEntry(interview_id=iid, role=common_pb2.ROLE_USER, text="half a",
                                             incomplete=True, entry_id="dead-1")
        await store.set_inflight(iid, epoch, [cut])
        assert await store.release_lease(iid, "dead", epoch)
        await c.end(iid)
    entries = await store.transcript(iid)
    assert [(e.text, e.incomplete) for e in entries] == [("half a", True)]
    assert not await store.redis.zscore(store.keys.inflight_index, iid)
