"""Session.Connect end to end: a scripted candidate plays real recordings in real time into an
in-process orchestrator wired to real VAD, STT (pocketsphinx), LLM (scripted) and TTS (flite)
subprocesses and a real redis-server."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from interview.v1 import common_pb2, session_pb2
from tests.orchestrator.session_support import Candidate, Orchestrator, speech
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def ai() -> Iterator[dict[str, ServiceProcess]]:
    procs = {"vad": ServiceProcess("vad"), "stt": ServiceProcess("stt"), "llm": ServiceProcess("llm"),
             "tts": ServiceProcess("tts", env={"TTS_PROVIDERS": "offline"})}
    try:
        for p in procs.values():
            p.start()
        yield procs
    finally:
        for p in procs.values():
            p.stop()


@pytest.fixture
async def orch(ai: dict[str, ServiceProcess], redis_server: RedisServer) -> AsyncIterator[Orchestrator]:
    o = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}).start()
    yield o
    await o.stop()


async def test_greeting_then_reply_with_transcript_on_one_timeline(orch: Orchestrator) -> None:
    iid, token = await orch.create()
    async with Candidate(orch.address, iid, token=token) as cand:
        greeting = await cand.wait_generations(1, timeout=5)
        assert cand.of("credential")[0].credential
        first = cand.generations[greeting]
        assert first.first_audio_offset is not None and first.first_audio_offset < 16000 * 2
        await cand.wait_played(greeting)
        end_of_speech = await cand.say(speech("goforward_16k.wav"))
        reply = await cand.wait_generations(2, timeout=15)
        g = cand.generations[reply]
        assert g.first_audio_offset is not None and g.first_audio_offset > end_of_speech  # one timeline
        await cand.wait_played(reply)
    entries = await orch.transcript(iid)
    roles = [e.role for e in entries]
    assert roles[:3] == [common_pb2.ROLE_AGENT, common_pb2.ROLE_USER, common_pb2.ROLE_AGENT], entries
    assert "forward" in entries[1].text
    assert entries[0].text.startswith("Hello")
    assert not any(e.interrupted or e.incomplete for e in entries[:3])
    finals = [c for c in cand.of("caption") if c.role == common_pb2.ROLE_USER and c.is_final]
    assert finals and "forward" in finals[0].text
    assert any(s.agent_speaking for s in cand.of("state"))
