"""Live coaching end to end: a practice (COACH) interview through the real VAD, STT (pocketsphinx),
scripted LLM and TTS (flite). A hesitant answer (real recordings with a real "ah" spliced between
them) gets a spoken note before the interviewer moves on: in the audio, in the interviewer's
transcript entry, and as an Event.coaching tied to the answer's sequence number. The same answer
in an ordinary interview gets none."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from interview.v1 import common_pb2, interviews_pb2
from tests.orchestrator.session_support import Candidate, Orchestrator, speech

pytestmark = pytest.mark.timeout(90)

RATE = 16000
AH = (15.1, 16.2)  # lecture_60s_16k.wav: "... develops theories [ah] that take note ..." (pocketsphinx: "ah")


def hesitant_answer() -> np.ndarray:
    """Five short recordings, each followed by the lecturer's "ah" (gaps well under the 1.2 s of
    silence that ends a turn): one answer with five hesitations in ~30 words (pocketsphinx, streaming,
    hears 3 to 5 of them)."""
    ah = speech("lecture_60s_16k.wav")[int(AH[0] * RATE):int(AH[1] * RATE)]
    gap = np.zeros(RATE // 4, dtype=np.int16)
    parts = []
    for name in ("goforward_16k.wav", "forever_16k.wav", "cards/003.wav", "librivox/sense_and_sensibility_01_austen_64kb-0880.wav",
                 "librivox/sense_and_sensibility_01_austen_64kb-0930.wav"):
        parts += [speech(name), gap, ah, gap]
    return np.concatenate(parts)


async def practice(orch: Orchestrator, persona: int) -> tuple[str, Candidate]:
    """Greeting, the hesitant answer, the reply played to the end."""
    off = interviews_pb2.TurnTakingConfig(enabled=False)  # silence ends the turn: the answer stays one turn
    iid, token = await orch.create(persona=persona, turn_taking=off)
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        await cand.wait_played(await cand.wait_generations(1, timeout=20))
        await cand.say(hesitant_answer())
        await cand.wait_played(await cand.wait_generations(2, timeout=40))  # generous: a loaded machine
    return iid, cand


async def coaching_events(orch: Orchestrator, iid: str) -> list[interviews_pb2.CoachingNote]:
    events = await orch.store.read_events(orch.store.keys.events(iid), "0-0", count=1000)
    return [e.coaching for e in events if e.WhichOneof("payload") == "coaching"]


async def test_a_hesitant_answer_gets_one_spoken_note_in_practice_and_none_in_an_interview(orch: Orchestrator) -> None:
    (coach_iid, coach), (iv_iid, iv) = await asyncio.gather(practice(orch, common_pb2.PERSONA_COACH),
                                                            practice(orch, common_pb2.PERSONA_INTERVIEWER))
    entries = await orch.transcript(coach_iid)
    assert [e.role for e in entries[:3]] == [common_pb2.ROLE_AGENT, common_pb2.ROLE_USER, common_pb2.ROLE_AGENT]
    answer, reply = entries[1], entries[2]
    ahs = answer.text.split().count("ah")
    assert ahs >= 3, answer.text
    note = f"You said 'ah' {ahs} times in that answer; try a short silent pause instead."
    assert coach.agent_text(coach.order[1]).startswith(note)  # said first, then the interviewer goes on
    assert reply.text.startswith(note) and len(reply.text) > len(note) and not reply.interrupted, reply.text
    for _ in range(100):  # recorded once the answer's entry is stored
        if notes := await coaching_events(orch, coach_iid):
            break
        await asyncio.sleep(0.05)
    assert [(n.text, n.metric, list(n.sequences), n.spoken) for n in notes] == [
        (note, "filler_rate", [answer.sequence], True)]

    assert "ah" in (await orch.transcript(iv_iid))[1].text.split()  # the same hesitations...
    assert not iv.agent_text(iv.order[1]).startswith("You said")  # ...and no note
    assert await coaching_events(orch, iv_iid) == []
