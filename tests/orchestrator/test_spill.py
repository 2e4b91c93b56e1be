"""Redis down at a session's end: what the outbox could not write goes to the local spill file
(fsynced, 0600) and is replayed in order when Redis returns — real orchestrator process, real AI
services, a real redis-server SIGKILLed and restarted on its data. Plus the file's own rules
(replay skips deleted interviews, deletion purges, overflow is counted and logged, a torn record
is ignored) against a real redis-server."""
from __future__ import annotations

import asyncio
import logging
import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from interview.v1 import common_pb2, interviews_pb2
from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.store.spill import SpillFile
from services.orchestrator.store.store import InterviewStore
from tests.orchestrator.conftest import API_KEY, orchestrator_env
from tests.orchestrator.session_support import Candidate, plan, speech
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(120)


async def _until(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while not await predicate():
        assert time.monotonic() - t0 < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return time.monotonic() - t0


async def test_entries_redis_could_not_take_at_session_end_are_spilled_and_replayed(
        ai: dict[str, ServiceProcess], tmp_path: Path) -> None:
    redis = RedisServer().start()
    spill = tmp_path / "state" / "spill.bin"
    env = orchestrator_env(redis.url, "spill:", **{f"{k.upper()}_ADDR": p.address for k, p in ai.items()},
                           ORCHESTRATOR_COMMANDS="false", ORCHESTRATOR_SPILL_PATH=str(spill))
    proc = ServiceProcess("orchestrator", env=env)
    r = aioredis.Redis.from_url(redis.url)
    store = InterviewStore(r, prefix="spill:")
    try:
        proc.start()
        async with InterviewsClient(proc.address, API_KEY) as c:
            created = await c.create(plan=plan("Hello there."), candidate_name="Ada")
        iid = created.interview.id
        async with Candidate(proc.address, iid, token=created.join_token, instant_playback=True) as cand:
            await cand.wait_played(await cand.wait_generations(1, timeout=10))
            await _until(lambda: _count(store, iid, 1), 5, "the greeting stored")
            await asyncio.sleep(1.5)  # AOF everysec: what was written is on disk before the kill
            redis.kill()
            await cand.say(speech("goforward_16k.wav"))  # the candidate keeps talking
            await cand.wait_played(await cand.wait_generations(2, timeout=20))
        # the session ends with Redis down: the outbox gives up after 3 s and spills
        await _until(lambda: _nonempty(spill), 15, "the spill file written")
        assert stat.S_IMODE(os.stat(spill).st_mode) == 0o600
        spilled = [e.role for e in SpillFile(spill)._read()]
        assert spilled[:2] == [common_pb2.ROLE_USER, common_pb2.ROLE_AGENT], spilled
        redis = RedisServer(port=redis.port, data_dir=redis.dir).start()
        took = await _until(lambda: _count(store, iid, 3), 15, "the spilled entries replayed")
        entries = await store.transcript(iid)
        assert [e.role for e in entries[:3]] == [common_pb2.ROLE_AGENT, common_pb2.ROLE_USER, common_pb2.ROLE_AGENT]
        assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))
        assert len({e.entry_id for e in entries}) == len(entries)
        await _until(lambda: _empty(spill), 5, "the spill file emptied")
        print(f"replayed {took:.2f} s after Redis returned")
    finally:
        await r.aclose()
        proc.kill()
        redis.stop()


async def _count(store: InterviewStore, iid: str, n: int) -> bool:
    try:
        return len(await store.transcript(iid)) >= n
    except Exception:  # noqa: BLE001 - Redis still down
        return False


async def _nonempty(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


async def _empty(path: Path) -> bool:
    return path.stat().st_size == 0


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[InterviewStore]:
    r = aioredis.Redis.from_url(redis_server.url)
    yield InterviewStore(r, prefix="spillu:", retention_s=3600)
    await r.aclose()


async def _interview(store: InterviewStore) -> str:
    from services.orchestrator.store.store import new_interview_id
    iv = interviews_pb2.Interview(id=new_interview_id(time.time()), status=1)
    await store.create(iv, created_by="t")
    return iv.id


def _entry(iid: str, n: int) -> interviews_pb2.TranscriptEntry:
    return interviews_pb2.TranscriptEntry(interview_id=iid, role=common_pb2.ROLE_USER, text=f"words {n}",
                                          entry_id=f"{iid}-{n}")


async def test_replay_skips_deleted_interviews_and_deletion_purges(store: InterviewStore, tmp_path: Path) -> None:
    spill = SpillFile(tmp_path / "spill.bin")
    kept, deleted, purged = await _interview(store), await _interview(store), await _interview(store)
    await store.append_transcript(_entry(kept, 0))
    await spill.append([_entry(kept, 1), _entry(deleted, 1), _entry(purged, 1), _entry(kept, 2)])
    await spill.append([_entry(kept, 1)])  # spilled twice (e.g. by two sessions): stored once
    await store.delete(deleted)
    assert await spill.purge(purged) == 1
    assert await spill.pending() == 4
    assert await spill.replay(store) == 3
    assert [e.text for e in await store.transcript(kept)] == ["words 0", "words 1", "words 2"]
    assert await store.transcript(purged) == [] and await spill.pending() == 0


async def test_overflow_is_counted_and_logged_and_a_torn_record_ignored(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spill = SpillFile(tmp_path / "spill.bin", max_bytes=120)
    with caplog.at_level(logging.ERROR, "store.spill"):
        kept = await spill.append([_entry("iv_x", n) for n in range(5)])
    assert 0 < kept < 5 and spill.overflowed == 5 - kept
    lost = [r for r in caplog.records if "LOST" in r.getMessage()]
    assert lost and lost[0].entries == [f"iv_x/iv_x-{n}" for n in range(kept, 5)]  # type: ignore[attr-defined]
    with open(tmp_path / "spill.bin", "ab") as f:
        f.write(b"\0\0\0\x40partial")  # a crash in the middle of a write
    assert await spill.pending() == kept


def test_an_unwritable_path_disables_spilling_without_failing(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        spill = SpillFile(ro / "sub" / "spill.bin")
        assert not spill.enabled or os.geteuid() == 0  # root ignores the mode bits
    finally:
        ro.chmod(0o700)
