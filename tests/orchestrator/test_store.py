"""The store on a real redis-server: gapless sequences under concurrency, idempotent retries,
owner lease + fencing, the control stream, and the outbox across a Redis restart."""
from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as aioredis

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from services.orchestrator import plans
from services.orchestrator.api.interviews import InterviewsApi
from services.orchestrator.store.outbox import TranscriptOutbox
from services.orchestrator.store.store import Fenced, InterviewStore, LeaseHeld, NotFound, new_interview_id
from services.orchestrator.api.tokens import JoinTokens
from tests.support.procs import RedisServer


async def new_interview(store: InterviewStore) -> str:
    iv = interviews_pb2.Interview(id=new_interview_id(time.time()), status=session_pb2.INTERVIEW_CREATED,
                                  plan=plans.load_dir()["demo"], phase_id="intro")
    await store.create(iv, created_by="test")
    return iv.id


def entry(iid: str, entry_id: str, text: str = "", role: int = common_pb2.ROLE_USER) -> interviews_pb2.TranscriptEntry:
    return interviews_pb2.TranscriptEntry(interview_id=iid, entry_id=entry_id, text=text or entry_id, role=role)


async def test_50_concurrent_writers_get_gapless_unique_sequences(store: InterviewStore, redis_server: RedisServer):
    iid = await new_interview(store)
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(50)]
    writers = [InterviewStore(c, prefix=store.keys.prefix) for c in clients]

    async def writer(w: int) -> list[tuple[str, int, bool]]:
        out = []
        for i in range(10):
            eid = f"w{w}-{i}"
            first = await writers[w].append_transcript(entry(iid, eid))
            retry = await writers[w].append_transcript(entry(iid, eid))  # a retried write
            assert (retry.sequence, retry.event_id, retry.duplicate) == (first.sequence, first.event_id, True)
            out.append((eid, first.sequence, first.duplicate))
        return out

    try:
        results = [r for rs in await asyncio.gather(*(writer(w) for w in range(50))) for r in rs]
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    seqs = sorted(seq for _, seq, _ in results)
    assert seqs == list(range(1, 501)) and not any(dup for *_, dup in results)
    entries = await store.transcript(iid, count=1000)
    assert [e.sequence for e in entries] == list(range(1, 501))
    by_seq = {seq: eid for eid, seq, _ in results}
    assert all(e.entry_id == by_seq[e.sequence] for e in entries)
    events = await store.read_events(store.stream_key(iid), "0-0", count=1000)
    transcript_seqs = [e.transcript.sequence for e in events if e.HasField("transcript")]
    assert transcript_seqs == list(range(1, 501))  # the event stream is in sequence order too
    assert (await store.get(iid)).seq == 500


async def test_lease_fences_a_stale_owner(store: InterviewStore):
    iid = await new_interview(store)
    epoch_a = await store.acquire_lease(iid, "instance-a", 5_000)
    assert await store.acquire_lease(iid, "instance-a", 5_000) == epoch_a  # re-acquire = renew
    with pytest.raises(LeaseHeld) as held:
        await store.acquire_lease(iid, "instance-b", 5_000)
    assert held.value.holder == "instance-a"
    await store.append_transcript(entry(iid, "a1"), epoch=epoch_a)

    epoch_b = await store.acquire_lease(iid, "instance-b", 5_000, force=True)  # a newer session replaces A
    assert epoch_b == epoch_a + 1
    assert not await store.renew_lease(iid, "instance-a", epoch_a, 5_000)
    with pytest.raises(Fenced):
        await store.append_transcript(entry(iid, "a2"), epoch=epoch_a)
    with pytest.raises(Fenced):
        await store.append_event(store.event(iid, turn_metrics=interviews_pb2.TurnMetrics(turn_id="t")), epoch=epoch_a)
    with pytest.raises(Fenced):
        await store.ack_control(iid, epoch_a, "1-0")
    assert not await store.release_lease(iid, "instance-a", epoch_a)
    assert (await store.append_transcript(entry(iid, "b1"), epoch=epoch_b)).sequence == 2
    assert await store.renew_lease(iid, "instance-b", epoch_b, 5_000)
    assert await store.release_lease(iid, "instance-b", epoch_b)
    assert (await store.get(iid)).owner == ""
    epoch_c = await store.acquire_lease(iid, "instance-c", 50)  # free again: a new epoch
    assert epoch_c == epoch_b + 1
    await asyncio.sleep(0.1)  # lease expired: another instance may take it
    assert await store.acquire_lease(iid, "instance-d", 5_000) == epoch_c + 1
    with pytest.raises(NotFound):
        await store.acquire_lease("iv_00000000000000000000", "x", 1000)


async def test_api_changes_reach_the_owner_through_the_control_stream(store: InterviewStore):
    api = InterviewsApi(store, JoinTokens.ephemeral(), plans.load_dir(), "http://x", 60)
    iid = (await api.create(interviews_pb2.CreateInterviewRequest(template="demo"), "test")).interview.id
    epoch = await store.acquire_lease(iid, "owner", 5_000)
    cursor = (await store.get(iid)).control_cursor
    assert cursor == "0-0"
    reader = asyncio.create_task(store.read_control(iid, cursor, block_ms=2_000))
    await asyncio.sleep(0.05)
    await api.update_config(interviews_pb2.UpdateConfigRequest(interview_id=iid, mode=common_pb2.MODE_CODING))
    first = await reader  # a blocked owner wakes up on the API call
    assert [e.WhichOneof("payload") for _, e in first] == ["mode_changed", "config_changed"]
    await api.set_phase(interviews_pb2.SetPhaseRequest(interview_id=iid, phase_id="wrap-up"))
    await api.post_code_event(interviews_pb2.PostCodeEventRequest(
        interview_id=iid, code=common_pb2.CodeSnapshot(kind=common_pb2.CODE_EVENT_SUBMIT, content="x")))
    await api.end(interviews_pb2.EndInterviewRequest(interview_id=iid, reason="done"))
    await store.ack_control(iid, epoch, first[-1][0])
    rest = await store.read_control(iid, (await store.get(iid)).control_cursor)  # a new owner resumes here
    assert [e.WhichOneof("payload") for _, e in rest] == ["phase_changed", "mode_changed", "code_event", "lifecycle"]
    assert rest[-1][1].lifecycle.kind == interviews_pb2.Lifecycle.ENDED
    events = {e.event_id for e in await store.read_events(store.stream_key(iid), "0-0")}
    assert all(e.event_id in events for _, e in first + rest)  # control entries point at their events
    lifecycle = await store.read_events(store.keys.lifecycle, "0-0", count=10_000)
    assert [e.lifecycle.kind for e in lifecycle if e.interview_id == iid] == [
        interviews_pb2.Lifecycle.CREATED, interviews_pb2.Lifecycle.ENDED]


async def test_outbox_waits_for_redis_and_flushes_in_order(prefix: str):
    """Stop redis-server, keep appending, restart it on the same port and dir: nothing lost, in order."""
    server = RedisServer().start()
    client = aioredis.Redis.from_url(server.url, socket_connect_timeout=0.5)
    store = InterviewStore(client, prefix=prefix)
    outbox = TranscriptOutbox(store, size=100).start()
    try:
        iid = await new_interview(store)
        first = await (await outbox.put(entry(iid, "e0")))
        assert first.sequence == 1
        server.stop()
        futures = [await outbox.put(entry(iid, f"e{i}")) for i in range(1, 21)]
        await asyncio.sleep(0.5)
        assert outbox.pending > 0 and outbox.retries > 0 and not any(f.done() for f in futures)
        server.start()  # same port, same dir (AOF)
        async with asyncio.timeout(15):
            results = await asyncio.gather(*futures)
        assert [r.sequence for r in results] == list(range(2, 22))
        texts = [e.text for e in await store.transcript(iid)]
        assert texts == [f"e{i}" for i in range(21)]
    finally:
        await outbox.close()
        await client.aclose()
        server.stop()


async def test_outbox_applies_back_pressure_when_full(store: InterviewStore):
    iid = await new_interview(store)
    outbox = TranscriptOutbox(store, size=2)  # not started: nothing drains
    await outbox.put(entry(iid, "a"))
    await outbox.put(entry(iid, "b"))
    blocked = asyncio.create_task(outbox.put(entry(iid, "c")))
    await asyncio.sleep(0.05)
    assert not blocked.done()  # the caller waits instead of the entry being dropped
    outbox.start()
    await (await blocked)
    await outbox.drain()
    assert [e.entry_id for e in await store.transcript(iid)] == ["a", "b", "c"]
    await outbox.close()


async def test_outbox_reports_refused_entries(store: InterviewStore):
    outbox = TranscriptOutbox(store).start()
    done = await outbox.put(entry("iv_00000000000000000000", "x"))
    with pytest.raises(NotFound):
        await done
    await outbox.close()


async def test_transcript_tail_and_the_last_event_of_a_kind(store: InterviewStore):
    """What a rejoining session reads: the newest entries in order, the newest phase change."""
    iid = await new_interview(store)
    for i in range(5):
        await store.append_transcript(entry(iid, f"e{i}"))
    tail = await store.transcript_tail(iid, 3)
    assert [(e.entry_id, e.sequence) for e in tail] == [("e2", 3), ("e3", 4), ("e4", 5)]
    assert [e.entry_id for e in await store.transcript_tail(iid, 50)] == [f"e{i}" for i in range(5)]
    assert await store.last_event(iid, "phase_changed") is None
    for to in ("a", "b"):
        await store.append_event(store.event(iid, phase_changed=interviews_pb2.PhaseChanged(to_phase_id=to)))
        await store.append_event(store.event(iid, lifecycle=interviews_pb2.Lifecycle(
            kind=interviews_pb2.Lifecycle.SESSION_JOINED)))
    await store.append_transcript(entry(iid, "e5"))
    found = await store.last_event(iid, "phase_changed")
    assert found is not None and found.phase_changed.to_phase_id == "b" and found.interview_id == iid
    assert found.event_id and found.time.seconds > 0
    assert await store.last_event(iid, "phase_changed", max_scan=2) is None  # not among the newest two
    assert (await store.last_event(iid, "phase_changed", max_scan=3)).phase_changed.to_phase_id == "b"
