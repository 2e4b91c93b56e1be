"""Session.Connect end to end: a scripted candidate plays real recordings in real time into an
in-process orchestrator wired to real VAD, STT (pocketsphinx), LLM (scripted) and TTS (flite)
subprocesses and a real redis-server."""
from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from tests.fakes.ai_services import speech_end
from tests.orchestrator.session_support import Candidate, Orchestrator, plan, speech
from services.common.clock import FakeClock
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(90)


async def test_greeting_then_reply_with_transcript_on_one_timeline(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        greeting = await cand.wait_generations(1, timeout=5)
        assert cand.of("credential")[0].credential
        first = cand.generations[greeting]
        assert first.first_audio_offset is not None and first.first_audio_offset < 16000 * 2
        await cand.wait_played(greeting)
        clip = speech("goforward_16k.wav")
        # the clip ends in 0.4 s of silence: turn-taking may answer inside it, after the last word
        end_of_speech = await cand.say(clip) - (len(clip) - speech_end(clip, 512))
        reply = await cand.wait_generations(2, timeout=15)
        g = cand.generations[reply]
        assert g.first_audio_offset is not None and g.first_audio_offset > end_of_speech  # one timeline
        await cand.wait_played(reply)
    entries = await orch.transcript(iid)
    roles = [e.role for e in entries]
    assert roles[:3] == [common_pb2.ROLE_AGENT, common_pb2.ROLE_USER, common_pb2.ROLE_AGENT], entries
    assert "forward" in entries[1].text
    assert entries[0].text.startswith("Hello")
    assert not any(e.interrupted or e.incomplete for e in entries[:3]), entries[:3]
    finals = [c for c in cand.of("caption") if c.role == common_pb2.ROLE_USER and c.is_final]
    assert finals and "forward" in finals[0].text
    assert any(s.agent_speaking for s in cand.of("state"))


LONG_GREETING = ("Hello and welcome to this interview. Today we will talk about your experience, your favourite "
                 "projects, and then we will do a little coding together. After that you can ask me anything.")


async def test_barge_in_pauses_then_clears_and_history_holds_only_what_was_heard(orch: Orchestrator) -> None:
    iid, token = await orch.create(plan=plan(LONG_GREETING))
    async with Candidate(orch.address, iid, token=token) as cand:
        gid = await cand.wait_generations(1, timeout=5)
        g = cand.generations[gid]
        await cand.wait_for(lambda: g.played >= 16000, what="1 s of the greeting played")
        await cand.say(speech("lecture_60s_16k.wav")[16000 * 2: 16000 * 5])
        await cand.wait_for(lambda: g.cleared, what="CLEAR")
        actions = [a for a, x in cand.playback() if x == gid]
        assert actions[:2] == [session_pb2.PLAYBACK_PAUSE, session_pb2.PLAYBACK_CLEAR]
        await cand.pause(1.0)
        assert g.after_clear == 0  # no stale audio after CLEAR, though the LLM was still streaming
    entries = await orch.transcript(iid)
    assert entries[0].role == common_pb2.ROLE_AGENT and entries[0].interrupted
    assert 0 < len(entries[0].text) < len(LONG_GREETING) - 40
    assert LONG_GREETING.startswith(entries[0].text.rstrip(".,"))


async def test_cough_pauses_then_resumes(orch: Orchestrator) -> None:
    iid, token = await orch.create(plan=plan(LONG_GREETING))
    async with Candidate(orch.address, iid, token=token) as cand:
        gid = await cand.wait_generations(1, timeout=5)
        g = cand.generations[gid]
        await cand.wait_for(lambda: g.played >= 16000, what="1 s of the greeting played")
        noise = (np.random.default_rng(1).standard_normal(int(0.3 * 16000)) * 6000).astype(np.int16)
        cough = speech("forever_16k.wav")[int(0.55 * 16000): int(0.85 * 16000)]
        await cand.say(np.maximum(cough, noise // 4))
        await cand.wait_for(lambda: (session_pb2.PLAYBACK_RESUME, gid) in cand.playback() or g.cleared, what="RESUME")
        cand.instant = True
        await cand.wait_played(gid, timeout=20)
        actions = [a for a, x in cand.playback() if x == gid]
        assert session_pb2.PLAYBACK_PAUSE in actions, actions
        assert actions[-1] == session_pb2.PLAYBACK_RESUME and session_pb2.PLAYBACK_CLEAR not in actions
        assert not g.cleared
    entries = await orch.transcript(iid)
    assert entries[0].role == common_pb2.ROLE_AGENT and not entries[0].interrupted


async def test_two_sessions_one_fails_the_other_goes_on(orch: Orchestrator) -> None:
    (iid1, t1), (iid2, t2) = await orch.create(), await orch.create()
    async with Candidate(orch.address, iid1, token=t1) as bad, Candidate(orch.address, iid2, token=t2) as good:
        await bad.wait_generations(1)
        g2 = await good.wait_generations(1)
        await good.wait_played(g2)
        bad.send_audio = False
        bad._out.put_nowait(session_pb2.ClientMessage(audio=common_pb2.AudioChunk(pcm=b"\x00" * 3,
                                                                                   offset_samples=10**9)))
        await bad.ended.wait()
        assert bad.status in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL)  # grpc#36066
        await good.say(speech("goforward_16k.wav"))
        await good.wait_generations(2, timeout=15)
    assert "even number of bytes" in bad.details or bad.status == grpc.StatusCode.INTERNAL


async def test_coding_mode_waits_longer_and_honours_no_reply_then_api_switch(orch: Orchestrator) -> None:
    iid, token = await orch.create(mode=common_pb2.MODE_CODING)
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        gid = await cand.wait_generations(1)
        await cand.wait_played(gid)
        await cand.say(speech("goforward_16k.wav"))
        await cand.pause(2.0)                       # < 3 s: the same turn in CODING
        await cand.say(speech("forever_16k.wav"))
        await cand.pause(4.5)
        assert len([g for g in cand.order if cand.generations[g].received]) == 1  # NO_REPLY: silence
        users = [e for e in await orch.store.transcript(iid) if e.role == common_pb2.ROLE_USER]
        assert len(users) == 1 and "forward" in users[0].text and users[0].mode == common_pb2.MODE_CODING
        await orch.api.update_config(interviews_pb2.UpdateConfigRequest(interview_id=iid,
                                                                       mode=common_pb2.MODE_CONVERSATIONAL))
        await cand.wait_for(lambda: any(s.mode == common_pb2.MODE_CONVERSATIONAL for s in cand.of("state")),
                            what="mode state")
        await cand.say(speech("goforward_16k.wav"))
        await cand.pause(2.0)                       # > 1.2 s: the turn ends in CONVERSATIONAL
        await cand.wait_generations(2, timeout=10)
    users = [e for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
    assert len(users) == 2 and users[1].mode == common_pb2.MODE_CONVERSATIONAL


async def test_vad_restarted_mid_session_next_utterance_still_answered(ai: dict, redis_server: RedisServer) -> None:
    vad = ServiceProcess("vad").start()
    try:
        async with Orchestrator.on(redis_server.url, ai, vad=vad) as orch:
            iid, token = await orch.create()
            async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
                gid = await cand.wait_generations(1)
                await cand.wait_played(gid)
                vad.kill()
                await cand.pause(0.5)
                session = orch.servicer.live[iid]
                before = session.listener.vad.responses
                vad = ServiceProcess("vad", port=vad.port).start()
                # the new VAD answers (probabilities) once the channel has reconnected
                await cand.wait_for(lambda: session.listener.vad.responses > before + 5 and session.listener.vad.reopens, 30,
                                    "VAD stream reopened")
                await cand.say(speech("goforward_16k.wav"))
                await cand.pause(1.5)
                await cand.wait_generations(2, timeout=15)
            users = [e for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
            assert users and "forward" in users[0].text
    finally:
        vad.stop()


async def test_an_answer_said_while_stt_was_down_is_transcribed_once_it_returns(ai: dict, redis_server: RedisServer) -> None:
    # The whole answer falls in the STT outage (the fault suite's stt restart under load: the stream
    # reconnected just after the candidate stopped, got only the FINALIZE, answered "" and the
    # answer was lost). The listener holds unanswered audio and re-sends it to the new stream.
    stt = ServiceProcess("stt").start()
    try:
        async with Orchestrator.on(redis_server.url, ai, stt=stt) as orch:
            iid, token = await orch.create()
            async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
                await cand.wait_played(await cand.wait_generations(1))
                stt.kill()
                await cand.pause(0.5)
                await cand.say(speech("goforward_16k.wav"))
                await cand.pause(2.0)  # the utterance ended (SPEECH_STOPPED, its FINALIZE) with STT down
                assert len([g for g in cand.order if cand.generations[g].received]) == 1  # nothing answered yet
                stt = await asyncio.to_thread(ServiceProcess("stt", port=stt.port).start)
                await cand.wait_generations(2, timeout=30)
            users = [e for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
            assert len(users) == 1 and "forward" in users[0].text, [e.text for e in users]
    finally:
        stt.stop()


async def test_speech_resumed_during_reply_latency_merges_into_one_turn(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    async with Candidate(orch.address, iid, token=token) as cand:
        gid = await cand.wait_generations(1)
        await cand.wait_played(gid)
        n_states = len(cand.of("state"))
        cand.hold_playback = True  # the reply is not heard yet (in flight / media's buffer)
        await cand.say(speech("goforward_16k.wav"))
        await cand.wait_for(lambda: any(s.agent_speaking for s in cand.of("state")[n_states:]), what="reply starts")
        await cand.say(speech("forever_16k.wav"))  # the candidate goes on before hearing the reply
        cand.hold_playback = False
        cand.instant = True
        await cand.pause(1.5)
        await cand.wait_for(lambda: len([e for e in cand.of("caption") if e.role == common_pb2.ROLE_AGENT
                                         and e.is_final]) >= 2, timeout=20, what="a reply to both")
    users = [e for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
    assert len(users) == 1, users
    assert "forward" in users[0].text and "forever" in users[0].text
    assert 0 < users[0].stt_confidence <= 1  # the two finals' confidences, word-weighted


async def test_coding_check_in_once_per_timeout_and_run_switches_back(ai: dict, redis_server: RedisServer) -> None:
    clock = FakeClock()
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}, clock=clock).start()
    try:
        iid, token = await orch.create(mode=common_pb2.MODE_CODING)
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            gid = await cand.wait_generations(1)
            await cand.wait_played(gid)
            session = orch.servicer.live[iid]
            await cand.wait_for(lambda: session.floor.turn is None, what="greeting over")
            await clock.advance(89)
            assert session.floor.check_ins == 0
            await clock.advance(2)
            assert session.floor.check_ins == 1
            g2 = await cand.wait_generations(2)
            await clock.advance(30)  # the agent speaking (not yet played): no check-in
            assert session.floor.check_ins == 1
            await cand.wait_played(g2)
            await cand.wait_for(lambda: session.floor.turn is None, what="check-in over")
            await clock.advance(91)
            assert session.floor.check_ins == 2
            await cand.wait_played(await cand.wait_generations(3))
            await cand.wait_for(lambda: session.floor.turn is None, what="second check-in over")
            await orch.api.post_code_event(interviews_pb2.PostCodeEventRequest(
                interview_id=iid, code=common_pb2.CodeSnapshot(kind=common_pb2.CODE_EVENT_RUN, content="print(1)")))
            await cand.wait_for(lambda: session.interview.mode == common_pb2.MODE_CONVERSATIONAL, what="RUN switch")
            await clock.advance(300)
            assert session.floor.check_ins == 2
            await cand.wait_for(lambda: cand.of("state")[-1].mode == common_pb2.MODE_CONVERSATIONAL, what="state")
    finally:
        await orch.stop()
