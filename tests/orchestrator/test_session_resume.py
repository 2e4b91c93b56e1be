"""A rejoin picks the conversation up (real services, real Redis, in-process orchestrator): the
new session opens with TASK_RESUME over the transcript so far, the phase clock keeps counting
from when the phase began, and no second greeting is spoken or written."""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from interview.v1 import common_pb2, interviews_pb2, llm_pb2
from services.common.clock import FakeClock
from services.common.plan_questions import normalize
from services.orchestrator.conversation.inflight import InflightMarker
from tests.orchestrator.session_support import RATE, Candidate, Orchestrator, Tap, speech
from tests.support.procs import RedisServer

pytestmark = pytest.mark.timeout(90)

USER, AGENT = common_pb2.ROLE_USER, common_pb2.ROLE_AGENT
WELCOME_BACK = "Welcome back, Ada. We got cut off."


def _first_request(llm: Tap, gid: str) -> llm_pb2.GenerateRequest:
    return next(r for r in llm.sent if r.request_id == gid)


async def test_a_rejoin_resumes_the_conversation_and_the_phase_clock(ai: dict, redis_server: RedisServer,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    clock = FakeClock()
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}, clock=clock).start()
    llm = orch.servicer.stubs.llm = Tap(orch.servicer.stubs.llm)
    try:
        iid, token = await orch.create()  # intro: 600 s budget
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as first:
            greeting = await first.wait_generations(1)
            await first.wait_played(greeting)
            credential = first.of("credential")[0].credential
            await clock.advance(100)
            await first.say(speech("goforward_16k.wav"))
            await first.pause(1.5)
            await first.wait_played(await first.wait_generations(2))
            session = orch.servicer.live[iid]
            await first.wait_for(lambda: session.floor.turn is None, what="reply over")
        assert _first_request(llm, greeting).task == llm_pb2.TASK_GREETING
        before = await orch.transcript(iid)  # media disconnected: the session has ended
        assert [e.role for e in before] == [AGENT, USER, AGENT], before
        await clock.advance(20)  # away for 20 s

        t0 = time.monotonic()
        async with Candidate(orch.address, iid, credential=credential, instant_playback=True) as second:
            gid = await second.wait_generations(1)
            first_audio_s = (second.generations[gid].first_audio_at or 0) - t0
            await second.wait_played(gid)
            spoken = second.agent_text(gid)
        req = _first_request(llm, gid)
        assert req.task == llm_pb2.TASK_RESUME
        assert [(m.role, m.text) for m in req.history] == [(e.role, e.text) for e in before]
        assert req.context.phase_id == "intro" and req.context.phase_time_left_s == 600 - 120

        after = await orch.transcript(iid)
        assert [(e.role, e.text) for e in after[:3]] == [(e.role, e.text) for e in before]
        assert len(after) == 4 and after[3].role == AGENT, after
        assert sum(e.text.startswith("Hello there.") for e in after) == 1  # greeted once
        open_question = re.findall(r"[^.!?]*\?", before[2].text)[-1].strip()
        assert after[3].text == f"{WELCOME_BACK} {open_question}"
        assert spoken.startswith("Welcome back")
        with capsys.disabled():
            print(f"\nrejoin -> first resume audio: {first_audio_s * 1000:.0f} ms")
    finally:
        await orch.stop()


@pytest.mark.parametrize("max_messages", [40, 2], ids=["fits", "over-the-limit"])
async def test_turns_closed_after_a_crash_are_in_the_resumed_history_once(ai: dict, redis_server: RedisServer,
                                                                           max_messages: int) -> None:
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()},
                              history_max_messages=max_messages).start()
    llm = orch.servicer.stubs.llm = Tap(orch.servicer.stubs.llm)
    try:
        iid, token = await orch.create()
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            await cand.wait_played(await cand.wait_generations(1))
            credential = cand.of("credential")[0].credential
        greeting, = await orch.transcript(iid)
        # A later owner crashed with turns in flight: the greeting (already written), the
        # candidate's answer, and the reply they were hearing.
        epoch = await orch.store.acquire_lease(iid, "crashed", 10_000, force=True)
        answer = interviews_pb2.TranscriptEntry(interview_id=iid, role=USER, text="I built a small compiler in Rust.",
                                                entry_id="crashed-u0", phase_id="intro")
        cut = interviews_pb2.TranscriptEntry(interview_id=iid, role=AGENT, text="Thanks. Now, about", incomplete=True,
                                             entry_id="crashed-g1-a", phase_id="intro")
        await orch.store.set_inflight(iid, epoch, [greeting, answer, cut])

        async with Candidate(orch.address, iid, credential=credential, instant_playback=True) as cand:
            gid = await cand.wait_generations(1)
            await cand.wait_played(gid)
            history = orch.servicer.live[iid].history
            await cand.wait_for(lambda: history.compactions or max_messages > 2, what="the older part summarised")
        entries = await orch.transcript(iid)
        assert [e.text for e in entries[:3]] == [greeting.text, answer.text, cut.text]  # each written once
        assert [e.sequence for e in entries] == [1, 2, 3, 4]
        req = _first_request(llm, gid)
        assert req.task == llm_pb2.TASK_RESUME
        said = [(AGENT, greeting.text, False), (USER, answer.text, False), (AGENT, cut.text, True)]
        if max_messages > 2:
            assert [(m.role, m.text, m.interrupted) for m in req.history] == said
            assert entries[3].text == f"{WELCOME_BACK} What was the hardest part?"  # not the cut-off fragment
        else:  # the newest that fit; the greeting went to the summariser
            assert [(m.role, m.text, m.interrupted) for m in req.history] == said[1:]
            # ... and the question it asked still counts as asked (else it would be asked again)
            plan = (await orch.store.get(iid)).interview.plan
            in_greeting = [q.id for p in plan.phases for q in p.questions if normalize(q.text) in normalize(greeting.text)]
            assert in_greeting and set(in_greeting) <= set(req.context.asked_question_ids), req.context
            summarize = [r for r in llm.sent if r.task == llm_pb2.TASK_SUMMARIZE]
            assert [m.text for m in summarize[0].history] == [greeting.text]
            assert entries[3].text.startswith(WELCOME_BACK)
    finally:
        await orch.stop()


async def test_a_reconnect_that_replaces_a_live_stream_loses_nothing(ai: dict, redis_server: RedisServer,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The new stream arrives while the old one is still open, mid-reply (a network switch: media
    rejoins before it notices the old stream is dead). What the old session had heard and said
    is in the transcript once, and the resumed session's history holds it. The in-flight marker
    is held stale (written at most once a minute): the old session's own writes must carry it."""
    monkeypatch.setattr(InflightMarker.__init__, "__defaults__", (60.0, 60.0))
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}).start()
    llm = orch.servicer.stubs.llm = Tap(orch.servicer.stubs.llm)
    try:
        iid, token = await orch.create()
        first = await Candidate(orch.address, iid, token=token).__aenter__()
        try:
            await first.wait_played(await first.wait_generations(1))
            credential = first.of("credential")[0].credential
            await first.say(speech("goforward_16k.wav"))
            await first.pause(1.5)
            reply = await first.wait_generations(2)
            await first.wait_for(lambda: first.generations[reply].played > RATE, what="1 s of the reply played")
            async with Candidate(orch.address, iid, credential=credential, instant_playback=True) as second:
                gid = await second.wait_generations(1)
                await second.wait_played(gid)
                await asyncio.wait_for(first.ended.wait(), 5)
                assert first.of("end")[-1].reason == "replaced"
        finally:
            await first.close()
        entries = await orch.transcript(iid)
        roles = [(e.role, e.interrupted or e.incomplete) for e in entries]
        assert roles == [(AGENT, False), (USER, False), (AGENT, True), (AGENT, False)], entries
        req = _first_request(llm, gid)
        assert req.task == llm_pb2.TASK_RESUME
        assert [(m.role, m.text) for m in req.history] == [(e.role, e.text) for e in entries[:3]]
    finally:
        await orch.stop()
