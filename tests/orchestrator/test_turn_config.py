"""Turn-taking thresholds changed with UpdateConfig: validated against the interview's own values,
persisted (set fields replace, unset keep), announced as ConfigChanged, and applied by a live
session at once: the VAD gets the new turn params mid-stream (no reset) and the end-of-turn
decision changes on the next pause (real VAD with its model, pocketsphinx, scripted LLM, flite)."""
from __future__ import annotations

import grpc
import pytest

from interview.v1 import interviews_pb2
from services.common import errors
from tests.fakes.ai_services import speech_end
from tests.orchestrator.session_support import Candidate, Orchestrator, speech
from tests.support.procs import RedisServer

pytestmark = pytest.mark.timeout(90)

RATE = 16000
TT = interviews_pb2.TurnTakingConfig


async def _update(orch: Orchestrator, iid: str, **tt: object) -> interviews_pb2.Interview:
    return await orch.api.update_config(interviews_pb2.UpdateConfigRequest(interview_id=iid, turn_taking=TT(**tt)))


@pytest.mark.parametrize("tt, field, words", [
    (dict(commit_threshold=1.5), "turn_taking.commit_threshold", "outside 0..1"),
    (dict(hold_threshold=-0.1), "turn_taking.hold_threshold", "outside 0..1"),
    (dict(turn_pause_ms=20), "turn_taking.turn_pause_ms", "outside 100..2000"),
    (dict(undecided_max_wait_ms=-5), "turn_taking.undecided_max_wait_ms", "outside 0..60000"),
    (dict(hold_max_wait_ms=70_000), "turn_taking.hold_max_wait_ms", "outside 0..60000"),
    (dict(hold_threshold=0.7, commit_threshold=0.6), "turn_taking.hold_threshold", "above commit_threshold"),
    # against the interview's own values (created with commit 0.5, undecided 2000 ms)
    (dict(hold_threshold=0.6), "turn_taking.hold_threshold", "above the interview's commit_threshold (0.5)"),
    (dict(commit_threshold=0.1), "turn_taking.commit_threshold", "below the interview's hold_threshold (0.15)"),
    (dict(hold_max_wait_ms=1500), "turn_taking.hold_max_wait_ms",
     "below the interview's undecided_max_wait_ms (2000)"),
])
async def test_bad_update_is_invalid_argument_naming_the_field_and_changes_nothing(
        redis_server: RedisServer, tt: dict, field: str, words: str) -> None:
    orch = Orchestrator(redis_server.url, {"vad": "x", "stt": "x", "llm": "x", "tts": "x"})
    try:
        iid, _ = await orch.create(turn_taking=TT(commit_threshold=0.5, undecided_max_wait_ms=2000))
        before = (await orch.store.get(iid)).interview
        with pytest.raises(errors.ServiceError) as e:
            await _update(orch, iid, **tt)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.field == field, e.value
        assert words in e.value.message, e.value.message
        assert (await orch.store.get(iid)).interview == before
    finally:
        await orch.stop()


async def test_set_fields_replace_unset_keep_and_config_changed_is_emitted(redis_server: RedisServer) -> None:
    orch = Orchestrator(redis_server.url, {"vad": "x", "stt": "x", "llm": "x", "tts": "x"})
    try:
        iid, _ = await orch.create(turn_taking=TT(commit_threshold=0.7, turn_pause_ms=300))
        iv = await _update(orch, iid, hold_threshold=0.2, undecided_max_wait_ms=900, enabled=False)
        t = iv.config.turn_taking
        assert (t.commit_threshold, t.turn_pause_ms, t.hold_threshold, t.undecided_max_wait_ms, t.enabled) == (
            pytest.approx(0.7), 300, pytest.approx(0.2), 900, False)
        assert not t.HasField("hold_max_wait_ms")  # still the default
        assert (await orch.store.get(iid)).interview.config.turn_taking == t
        events = await orch.store.read_events(orch.store.keys.events(iid), "0-0", count=100)
        changed = [e.config_changed for e in events if e.WhichOneof("payload") == "config_changed"]
        assert len(changed) == 1 and changed[0].config.turn_taking == t
        # a wait longer than the default hold wait is fine once the hold wait goes up with it
        iv = await _update(orch, iid, undecided_max_wait_ms=5000, hold_max_wait_ms=8000)
        assert (iv.config.turn_taking.undecided_max_wait_ms, iv.config.turn_taking.hold_max_wait_ms) == (5000, 8000)
        with pytest.raises(errors.ServiceError) as e:  # nothing set at all
            await orch.api.update_config(interviews_pb2.UpdateConfigRequest(interview_id=iid, turn_taking=TT()))
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "turn_taking" in e.value.message
    finally:
        await orch.stop()


async def _reply_delay_ms(cand: Candidate, n: int) -> float:
    """Say the clip, then silence; ms from the clip's end of speech to the reply's first audio."""
    clip = speech("goforward_16k.wav")
    end = await cand.say(clip) - (len(clip) - speech_end(clip, 512))
    reply = await cand.wait_generations(n, timeout=15)
    await cand.wait_played(reply)
    offset = cand.generations[reply].first_audio_offset
    assert offset is not None
    return (offset - end) * 1000 / RATE


async def test_a_live_session_applies_a_turn_taking_change_at_once(ai: dict, redis_server: RedisServer) -> None:
    """The same answer, three times in one interview: with the defaults the model commits at the
    short pause; after UpdateConfig(enabled=false) the VAD stops scoring (params applied on the
    live stream, its 1.2 s silence decides); after UpdateConfig(enabled=true, turn_pause_ms=600)
    scoring is back, at the new pause."""
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}).start()
    try:
        iid, token = await orch.create()
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            await cand.wait_played(await cand.wait_generations(1))
            session = orch.servicer.live[iid]
            vad_stream = session.listener.vad
            assert session.floor.eot.on
            semantic_ms = await _reply_delay_ms(cand, 2)

            await _update(orch, iid, enabled=False)
            await cand.wait_for(lambda: session.listener.applied is not None
                                and not session.listener.applied.turn_scoring, what="turn scoring off at the VAD")
            assert not session.floor.eot.on
            silence_ms = await _reply_delay_ms(cand, 3)

            await _update(orch, iid, enabled=True, turn_pause_ms=600)
            await cand.wait_for(lambda: session.listener.applied is not None and session.listener.applied.turn_scoring
                                and session.listener.applied.turn_pause_ms == 600, what="turn scoring back at 600 ms")
            assert session.floor.eot.on
            again_ms = await _reply_delay_ms(cand, 4)
            assert session.listener.vad is vad_stream and vad_stream.reopens == 0  # one stream all along
        events = await orch.store.read_events(orch.store.keys.events(iid), "0-0", count=1000)
        waits = [e.turn_metrics.speech_end_to_commit_ms for e in events if e.WhichOneof("payload") == "turn_metrics"]
        timings = f"end of speech -> commit {waits} ms, -> first audio {[semantic_ms, silence_ms, again_ms]} ms"
        print(timings)
        # the model commits at its 200 ms pause (+ the FINALIZE); silence only waits out the VAD's 1.2 s (heard:
        # Silero ends this clip ~0.1 s before the RMS end measured here); then the 600 ms pause
        assert len(waits) == 3 and waits[0] < 1000 and 600 <= waits[2] < 1100, timings
        assert silence_ms >= 1000, timings
    finally:
        await orch.stop()
