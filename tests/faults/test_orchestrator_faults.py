"""Faults on real processes, one each: Redis SIGKILLed for 5 s while the candidate keeps talking;
each AI service killed and restarted mid-interview; the media side (the process holding the
Session.Connect stream) killed. (An orchestrator SIGKILL with no rejoin is
tests/orchestrator/test_abandoned.py.)"""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
import redis.asyncio as aioredis

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.store.store import InterviewStore
from tests.faults.conftest import record
from tests.orchestrator.conftest import API_KEY
from tests.orchestrator.session_support import Candidate, plan, speech
from tests.support.procs import ROOT, RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(180)


async def _create(orch: ServiceProcess) -> tuple[str, str]:
    async with InterviewsClient(orch.address, API_KEY) as c:
        created = await c.create(plan=plan("Hello there."), candidate_name="Ada")
    return created.interview.id, created.join_token


async def _answered(cand: Candidate, n: int, timeout: float) -> float:
    """Wait for the n-th agent generation's first audio; returns when it arrived (monotonic)."""
    gid = await cand.wait_generations(n, timeout=timeout)
    g = cand.generations[gid]
    await cand.wait_for(lambda: g.first_audio_at is not None, timeout=timeout, what=f"generation {n} audio")
    await cand.wait_played(gid, timeout=30)
    return g.first_audio_at  # type: ignore[return-value]


async def _stored(store: InterviewStore, iid: str, n: int, since: float, timeout: float = 15) -> float:
    """Wait until the transcript has n entries; seconds since `since`."""
    while True:
        try:
            if len(await store.transcript(iid)) >= n:
                return time.monotonic() - since
        except Exception:  # noqa: BLE001 - reconnecting
            pass
        assert time.monotonic() - since < timeout, f"fewer than {n} entries {timeout} s after Redis returned"
        await asyncio.sleep(0.05)


def _store(redis: RedisServer) -> InterviewStore:
    return InterviewStore(aioredis.Redis.from_url(redis.url), prefix="faults:")


async def test_redis_killed_for_5_s_while_the_candidate_talks(stack: dict[str, Any], run: int) -> None:
    orch: ServiceProcess = stack["orchestrator"]
    iid, token = await _create(orch)
    store = _store(stack["redis"])
    try:
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            await _answered(cand, 1, 15)
            await cand.say(speech("goforward_16k.wav"))
            await _answered(cand, 2, 20)
            await asyncio.sleep(1.5)  # AOF everysec: what was acknowledged is on disk (durability is another issue)
            before = len(await store.transcript(iid))
            stack["redis"].kill()
            down_at = time.monotonic()
            await cand.say(speech("goforward_16k.wav"))  # keeps talking while Redis is down
            await _answered(cand, 3, 20)
            await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - down_at)))
            stack["redis"] = RedisServer(port=stack["redis"].port, data_dir=stack["redis"].dir).start()
            up_at = time.monotonic()
            outage = await _stored(store, iid, before + 2, up_at)  # what was said during the outage
            await cand.say(speech("goforward_16k.wav"))
            try:
                await _answered(cand, 4, 20)
            except AssertionError:
                raise AssertionError(f"ended: {cand.of('end')}; log: {orch.logs()[-3000:]}")
            want = before + 4  # two utterances and two replies after the kill
            await _stored(store, iid, want, up_at)
            assert not cand.of("end"), cand.of("end")  # the session lived through it
        entries = await store.transcript(iid)
        assert [e.sequence for e in entries] == list(range(1, len(entries) + 1))  # gapless
        assert len({e.entry_id for e in entries}) == len(entries)
        roles = [e.role for e in entries]
        assert roles[:6] == [common_pb2.ROLE_AGENT, common_pb2.ROLE_USER] * 3, roles  # in order
        assert not any(e.incomplete for e in entries[:6]), entries
        record("redis_sigkill_5s", entries=len(entries), lost=max(0, want - len(entries)),
               outage_entries_stored_s=round(outage, 3))
    finally:
        await store.redis.aclose()


@pytest.mark.parametrize("service", ["vad", "stt", "llm", "tts"])
async def test_ai_service_killed_and_restarted_mid_interview(stack: dict[str, Any], service: str, run: int) -> None:
    orch: ServiceProcess = stack["orchestrator"]
    iid, token = await _create(orch)
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        await _answered(cand, 1, 15)
        proc: ServiceProcess = stack[service]
        proc.kill()
        await asyncio.sleep(1.0)  # the session sees its stream (vad, stt) or channel (llm, tts) fail
        proc.start()  # returns once its health answers SERVING
        serving_at = time.monotonic()
        await cand.say(speech("goforward_16k.wav"))
        said_at = time.monotonic()
        answered_at = await _answered(cand, 2, 20)
        assert not cand.of("end"), cand.of("end")  # the session never ended
    took = answered_at - serving_at
    assert took < 5.0 + (said_at - serving_at), f"{service}: answered {took:.2f} s after SERVING"
    record(f"{service}_restart", answer_after_serving_s=round(took, 3),
           answer_after_speech_end_s=round(answered_at - said_at, 3))


HOLDER = """
import asyncio, sys
sys.path.insert(0, {root!r})
from tests.orchestrator.session_support import Candidate
async def main():
    async with Candidate({address!r}, {iid!r}, token={token!r}, instant_playback=True) as cand:
        await cand.wait_for(lambda: cand.of("credential"), what="credential")
        print(cand.of("credential")[0].credential, flush=True)
        await cand.wait_played(await cand.wait_generations(1))
        await asyncio.sleep(0.5)  # the greeting is stored
        print("joined", flush=True)
        await asyncio.sleep(3600)
asyncio.run(main())
"""


async def test_media_killed_ends_the_session_and_the_interview_stays_resumable(stack: dict[str, Any], run: int) -> None:
    orch: ServiceProcess = stack["orchestrator"]
    iid, token = await _create(orch)
    media = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=str(ROOT), address=orch.address, iid=iid,
                                                                 token=token)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    store = _store(stack["redis"])
    try:
        credential = await asyncio.to_thread(media.stdout.readline)  # type: ignore[union-attr]
        assert (await asyncio.to_thread(media.stdout.readline)).strip() == "joined"  # type: ignore[union-attr]
        after = await store.last_event_id(store.keys.events(iid))
        media.kill()
        killed_at = time.monotonic()
        left = None
        while left is None:
            assert time.monotonic() - killed_at < 5, "the session did not end within 5 s of media's death"
            for e in await store.read_events(store.keys.events(iid), after, block_ms=200):
                if e.WhichOneof("payload") == "lifecycle" and e.lifecycle.kind == interviews_pb2.Lifecycle.SESSION_LEFT:
                    left = time.monotonic() - killed_at
                after = e.event_id
        snap = await store.get(iid)
        assert snap.interview.status == 2  # INTERVIEW_ACTIVE: resumable
        async with Candidate(orch.address, iid, credential=credential.strip(), instant_playback=True) as back:
            await back.wait_generations(1, timeout=15)
            await back.wait_for(lambda: [c for c in back.of("caption") if c.role == common_pb2.ROLE_AGENT and c.is_final],
                                what="the welcome back")
            said = [c.text for c in back.of("caption") if c.role == common_pb2.ROLE_AGENT and c.is_final][0]
        assert said.startswith("Welcome back"), said
        record("media_sigkill", session_ended_s=round(left, 3))
    finally:
        media.kill()
        await store.redis.aclose()


class ScreenShare:
    """A consented screen share sent the way media sends it (Session.Connect frames, JPEG, a
    still editor showing two_sum, 2 frames a second: the scripted frame source of
    tests/media/test_video_interview.py without the WebRTC hop)."""

    def __init__(self, cand: Candidate, fps: float = 2.0):
        from tests.video import screens
        self.cand, self.fps = cand, fps
        self.jpeg = screens.jpeg(screens.editor(screens.TWO_SUM, size=(1280, 720), font_px=18))
        self.sent = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.cand._out.put_nowait(session_pb2.ClientMessage(consent=session_pb2.ConsentUpdate(
            consent=common_pb2.VideoConsent(screen=True))))
        self._task = asyncio.create_task(self._send())

    async def _send(self) -> None:
        t0 = time.monotonic()
        while True:
            self.cand._out.put_nowait(session_pb2.ClientMessage(frame=common_pb2.VideoFrame(
                jpeg=self.jpeg, source=common_pb2.VIDEO_SOURCE_SCREEN, width=1280, height=720,
                time_ms=int((time.monotonic() - t0) * 1000))))
            self.sent += 1
            await asyncio.sleep(1 / self.fps)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


async def _observation(store: InterviewStore, iid: str, after: str, timeout: float) -> tuple[float, str]:
    """Wait for an observation event after event id `after`: (when it was read, its event id)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        for e in await store.read_events(store.keys.events(iid), after, block_ms=200):
            after = e.event_id
            if e.WhichOneof("payload") == "observation":
                return time.monotonic(), e.event_id
    raise AssertionError(f"no observation within {timeout} s")


async def test_video_killed_and_restarted_during_a_screen_share(stack: dict[str, Any], run: int) -> None:
    orch: ServiceProcess = stack["orchestrator"]
    async with InterviewsClient(orch.address, API_KEY) as c:
        created = await c.create(plan=plan("Hello there."), candidate_name="Ada", screen=True)
    iid = created.interview.id
    store = _store(stack["redis"])
    try:
        async with Candidate(orch.address, iid, token=created.join_token, instant_playback=True) as cand:
            share = ScreenShare(cand)
            try:
                await _answered(cand, 1, 15)
                after = await store.last_event_id(store.keys.events(iid))
                share.start()
                _, after = await _observation(store, iid, after, 20)  # the share is analysed
                await cand.say(speech("goforward_16k.wav"))  # a baseline: the same, before the fault
                base_said = time.monotonic()
                baseline = await _answered(cand, 2, 20) - base_said
                proc: ServiceProcess = stack["video"]
                proc.kill()
                await asyncio.sleep(1.0)  # the session sees its Analyze stream fail; frames keep coming
                # in a thread: the candidate's microphone and screen keep their real-time pace meanwhile
                await asyncio.to_thread(proc.start)  # returns once its health answers SERVING
                serving_at = time.monotonic()
                await cand.say(speech("goforward_16k.wav"))
                said_at = time.monotonic()
                answered_at = await _answered(cand, 3, 20)
                observed_at, _ = await _observation(store, iid, after, 30)  # observations resume
                assert not cand.of("end"), cand.of("end")  # the session never ended
            finally:
                await share.stop()
    finally:
        await store.redis.aclose()
    took = answered_at - serving_at
    assert took < 5.0 + (said_at - serving_at), f"video: answered {took:.2f} s after SERVING"
    record("video_restart", answer_after_serving_s=round(took, 3),
           answer_after_speech_end_s=round(answered_at - said_at, 3),
           baseline_answer_after_speech_end_s=round(baseline, 3),
           observation_after_serving_s=round(observed_at - serving_at, 3), frames_sent=share.sent)
