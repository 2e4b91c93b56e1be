"""Turn-taking in the session: the end-of-turn decision (fake clock, unit), and end to end with the
real VAD and its Smart Turn model, pocketsphinx, the scripted LLM and flite.

The recording: librivox clip 0890 ("unless to be rather cold hearted and | rather selfish is to be
ill disposed") cut after "and" (word ends from librivox/alignment.json), 1.5 s of its own room
tone, then the rest of the sentence: a thinking pause inside a turn, then a true end.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import numpy as np
import pytest

from interview.v1 import common_pb2, interviews_pb2, llm_pb2
from services.common.clock import FakeClock
from services.common import errors
from services.orchestrator.conversation import modes
from services.orchestrator.conversation.end_of_turn import EndOfTurn, policy_config
from services.orchestrator.conversation.heard import TurnPaused
from services.orchestrator.conversation.turn_policy import Decision, TurnPolicyConfig
from tests.fakes.ai_services import Latencies, add_all, speech_end
from tests.orchestrator.session_support import SPEECH, Candidate, Orchestrator, Tap, speech
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(90)

CLIP = "sense_and_sensibility_01_austen_64kb-0890"
RATE = 16000


def _clip() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the words up to "and", the rest of the sentence, a source of its room tone)."""
    audio = speech(f"librivox/{CLIP}.wav")
    words = json.loads((SPEECH / "librivox" / "alignment.json").read_text())[CLIP]
    cut = int(next(end for w, _, end in words if w == "and") * RATE)
    return audio[:cut], audio[cut:], audio[:int(words[0][1] * RATE) - 800]


def _tone(lead: np.ndarray, seconds: float) -> np.ndarray:
    return np.tile(lead, int(seconds * RATE // len(lead)) + 1)[:int(seconds * RATE)]


# ---- the decision, on a fake clock ----

def _pause(fid: str, p: float, at: float, pause_ms: int = 200) -> TurnPaused:
    return TurnPaused(probability=p, pause_ms=pause_ms, at=at, finalize_id=fid, trace=common_pb2.TraceContext())


def _eot(cfg: TurnPolicyConfig | None = None, learn_pauses: bool = True) -> tuple[FakeClock, list[float], EndOfTurn]:
    """An EndOfTurn on a fake clock, semantic, English; `commits` records when it committed."""
    clock, commits = FakeClock(), []
    eot = EndOfTurn(clock, lambda: commits.append(clock.monotonic()))
    eot.configure(True, cfg or TurnPolicyConfig(), "en", learn_pauses)
    return clock, commits, eot


async def test_verdicts_commit_hold_and_fall_back_on_the_injected_clock() -> None:
    clock, commits, eot = _eot()
    t0 = clock.monotonic()
    eot.paused(_pause("f1", 0.95, t0))
    eot.finalized("f1", "i built a compiler for a small language")
    assert eot.committed and commits == [t0] and eot.speech_end == pytest.approx(t0 - 0.2)
    eot.taken()
    # a hold ("and ...") waits out hold_max_wait_ms from the end of speech, whatever the VAD's silence says
    eot.paused(_pause("f2", 0.9, clock.monotonic()))
    eot.finalized("f2", "i built a compiler and")
    eot.speech_stopped(clock.monotonic() + 1.0, 1200)
    await clock.advance(2.7)
    assert len(commits) == 1 and not eot.committed
    await clock.advance(0.2)
    assert len(commits) == 2 and eot.committed and "fallback after 3000 ms" in eot.reason
    eot.taken()
    # neutral signals: undecided_max_wait_ms; the candidate going on cancels it
    eot.paused(_pause("f3", 0.5, clock.monotonic()))
    eot.finalized("f3", "it was")
    eot.resumed()
    await clock.advance(5)
    assert len(commits) == 2 and not eot.committed
    eot.paused(_pause("f4", 0.5, clock.monotonic()))
    eot.finalized("f4", "it was")
    await clock.advance(0.99)
    assert len(commits) == 2
    await clock.advance(0.02)
    assert len(commits) == 3
    # a FINALIZE of another pause decides nothing
    eot.taken()
    eot.paused(_pause("f5", 0.99, clock.monotonic()))
    eot.finalized("f4", "done")
    assert not eot.committed


async def test_a_long_answers_commit_waits_its_pause_and_speech_cancels_it() -> None:
    clock, commits, eot = _eot(TurnPolicyConfig(long_answer_words=5, long_answer_commit_ms=800), learn_pauses=False)
    long = "i built a compiler for a small language"
    eot.paused(_pause("f1", 0.95, clock.monotonic()))
    eot.finalized("f1", long)
    eot.speech_stopped(clock.monotonic() + 0.1, 100)  # the VAD's short silence does not commit it either
    await clock.advance(0.55)
    assert not commits
    eot.resumed()                                     # the candidate goes on: the pending commit is dropped
    await clock.advance(2)
    assert not commits and not eot.committed
    t = clock.monotonic()
    eot.paused(_pause("f2", 0.95, t))
    eot.finalized("f2", long + " and it worked")
    await clock.advance(0.61)
    assert commits == [pytest.approx(t + 0.6)] and "long answer" in eot.reason  # 800 ms from the end of speech
    eot.taken()
    eot.paused(_pause("f3", 0.95, clock.monotonic()))
    eot.finalized("f3", "yes")                        # short: at once
    assert len(commits) == 2


async def test_the_candidates_pauses_are_learned_from_false_ends() -> None:
    """The candidate went on 0.9 s into a pause judged complete (a COMMIT): from then on a
    complete-sounding pause waits 0.9 s + the margin, so the same pause is not cut into again (a
    question too); answers without a false end let the learned wait decay."""
    clock, commits, eot = _eot()
    t = clock.monotonic()
    eot.paused(_pause("f1", 0.95, t))
    eot.finalized("f1", "i built a compiler")
    assert commits == [t]                             # committed at 200 ms: the reply starts
    eot.taken()
    await clock.advance(0.7)
    eot.resumed(replying=True)                        # ... and the candidate went on 0.9 s after the end of speech
    assert eot.learning.wait_ms == 900 + 250
    t = clock.monotonic()
    eot.paused(_pause("f2", 0.95, t))
    eot.finalized("f2", "i built a compiler for a small language")
    assert not commits[1:] and "the candidate's pauses: 1150 ms" in eot.verdict.reason
    await clock.advance(0.96)
    assert commits[1:] == [pytest.approx(t + 0.95)]   # 1150 ms from the end of speech
    eot.taken()
    t = clock.monotonic()
    eot.paused(_pause("f3", 0.95, t))
    eot.finalized("f3", "how much it cost them")     # reads as a question (offline: no punctuation)
    await clock.advance(0.96)
    assert commits[2:] == [pytest.approx(t + 0.95)]
    eot.taken()
    await clock.advance(10)
    eot.speech_started()                              # the next answer, long after: no false end
    assert eot.learning.wait_ms == int(1150 * 0.85)
    eot.configure(True, TurnPolicyConfig(), "en", learn_pauses=False)
    eot.paused(_pause("f4", 0.95, clock.monotonic()))
    eot.finalized("f4", "i built a compiler")
    assert len(commits) == 4                          # learning off: at once


async def test_a_late_score_is_waited_for_and_decides() -> None:
    """Under load the VAD's score can come after its SPEECH_STOPPED: committing at the silence then
    cut into thinking pauses, so the policy waits for the score up to `unscored_wait_ms`."""
    clock, commits, eot = _eot(TurnPolicyConfig(unscored_wait_ms=2000))
    t = clock.monotonic()
    eot.speech_stopped(t, 1200)                      # 1.2 s of silence, no score yet
    eot.finalized("s1", "rather cold hearted")       # the stop's FINALIZE answered first
    await clock.advance(0.3)
    assert not commits
    eot.paused(TurnPaused(0.05, 200, clock.monotonic(), "s1", common_pb2.TraceContext(), None, True))
    assert eot.verdict is not None and eot.verdict.decision is Decision.HOLD
    assert eot.speech_end == pytest.approx(t - 1.2)  # the stop's estimate, not the late receipt
    eot.speech_started()                             # the candidate goes on at 1.5 s: no cut-in
    await clock.advance(5)
    assert not commits
    t = clock.monotonic()
    eot.speech_stopped(t, 1200)                      # a true end whose score never comes
    await clock.advance(0.79)
    assert not commits
    await clock.advance(0.02)
    assert commits == [pytest.approx(t + 0.8)] and "no turn score" in eot.reason
    eot.paused(TurnPaused(0.99, 200, clock.monotonic(), "s2", common_pb2.TraceContext(), None, True))
    assert eot.committed and len(commits) == 1       # too late: already committed
    eot.taken()
    eot.speech_stopped(clock.monotonic(), 1200)
    eot.paused(TurnPaused(0.97, 200, clock.monotonic(), "s3", common_pb2.TraceContext(), None, True))
    eot.finalized("s3", "that is all i have")        # score first, then the FINALIZE: commits at once
    assert len(commits) == 2 and eot.reason == "turn model: complete"
    eot.taken()                                      # the reply for it started; the VAD's stop then
    eot.speech_stopped(clock.monotonic(), 1200)      # commits at once, as before (nothing to wait for)
    assert len(commits) == 3 and eot.reason == "silence"


async def test_silence_only_when_off_or_without_the_model() -> None:
    clock = FakeClock()
    eot = EndOfTurn(clock, lambda: None)
    eot.configure(False, TurnPolicyConfig(), "en")
    eot.speech_stopped(clock.monotonic(), 1200)
    assert eot.committed and eot.speech_end == pytest.approx(clock.monotonic() - 1.2)
    eot.configure(True, TurnPolicyConfig(), "en")
    eot.speech_started()
    eot.unavailable()
    eot.paused(_pause("f1", 0.99, clock.monotonic()))
    eot.finalized("f1", "i am done")
    assert not eot.committed  # no model: its scores (none come) decide nothing; SPEECH_STOPPED does
    eot.speech_stopped(clock.monotonic(), 1200)
    assert eot.committed


def test_config_defaults_and_mode() -> None:
    d = TurnPolicyConfig()
    cfg = policy_config(modes.turn_taking(interviews_pb2.InterviewConfig()))
    assert (cfg.commit_probability, cfg.hold_probability, cfg.undecided_max_wait_ms, cfg.hold_max_wait_ms) == (
        pytest.approx(d.commit_probability), pytest.approx(d.hold_probability), d.undecided_max_wait_ms,
        d.hold_max_wait_ms)
    config = interviews_pb2.InterviewConfig(turn_taking=interviews_pb2.TurnTakingConfig(turn_pause_ms=300))
    conv = modes.vad_params(common_pb2.MODE_CONVERSATIONAL, config, 1200, 3000)
    assert conv.turn_scoring and conv.turn_pause_ms == 300 and conv.min_silence_ms == 1200
    coding = modes.vad_params(common_pb2.MODE_CODING, config, 1200, 3000)
    assert coding.HasField("turn_scoring") and not coding.turn_scoring  # said, so a mode change turns it off
    off = interviews_pb2.InterviewConfig(turn_taking=interviews_pb2.TurnTakingConfig(enabled=False))
    assert not modes.vad_params(common_pb2.MODE_CONVERSATIONAL, off, 1200, 3000).turn_scoring


@pytest.mark.parametrize("tt, field", [
    (dict(commit_threshold=1.5), "config.turn_taking.commit_threshold"),
    (dict(hold_threshold=-0.1), "config.turn_taking.hold_threshold"),
    (dict(hold_threshold=0.9), "config.turn_taking.hold_threshold"),  # above the default commit 0.8
    (dict(turn_pause_ms=20), "config.turn_taking.turn_pause_ms"),
    (dict(undecided_max_wait_ms=4000), "config.turn_taking.undecided_max_wait_ms"),  # above hold's 3000
    (dict(hold_max_wait_ms=70_000), "config.turn_taking.hold_max_wait_ms"),
])
async def test_bad_turn_taking_config_is_invalid_argument_naming_the_field(redis_server: RedisServer, tt, field):
    orch = Orchestrator(redis_server.url, {"vad": "x", "stt": "x", "llm": "x", "tts": "x"})
    try:
        with pytest.raises(errors.ServiceError) as e:
            await orch.create(turn_taking=interviews_pb2.TurnTakingConfig(**tt))
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.field == field, e.value
        iid, _ = await orch.create(turn_taking=interviews_pb2.TurnTakingConfig(commit_threshold=0.7, hold_threshold=0.1))
        assert (await orch.store.get(iid)).interview.config.turn_taking.commit_threshold == pytest.approx(0.7)
    finally:
        await orch.stop()


# ---- end to end: real VAD with the model ----

async def test_no_answer_at_a_thinking_pause_and_a_quick_one_at_the_end(ai: dict, redis_server: RedisServer) -> None:
    """The pause after "and" is held (1.5 s, more than the 1.2 s silence alone would wait); the
    words after it join the same transcript entry; after the true end the reply's first audio
    comes sooner than the VAD's 1.2 s silence alone would even start it."""
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}).start()
    stubs = orch.servicer.stubs
    stubs.llm = Tap(stubs.llm)
    first, rest, lead = _clip()
    try:
        iid, token = await orch.create()
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            await cand.wait_played(await cand.wait_generations(1))
            await cand.say(_tone(lead, 0.5))
            said = [asyncio.create_task(cand.say(x)) for x in (first, _tone(lead, 1.5), rest)]
            end = (await asyncio.gather(*said))[-1]
            await cand.say(_tone(lead, 0.1))
            reply = await cand.wait_generations(2, timeout=10)
            g = cand.generations[reply]
            await cand.wait_played(reply)
        replies = [r for r in stubs.llm.sent if r.task == llm_pb2.TASK_REPLY]
        assert len(replies) == 1, [r.task for r in stubs.llm.sent]
        entries = [e for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
        assert len(entries) == 1, [e.text for e in entries]
        assert "selfish" in entries[0].text and "cold" in entries[0].text, entries[0].text
        delay_ms = (g.first_audio_offset - end) * 1000 / RATE
        assert delay_ms <= 1200, f"end of speech -> first audio {delay_ms:.0f} ms"
        events = await orch.store.read_events(orch.store.keys.events(iid), "0-0", count=1000)
        m = [e.turn_metrics for e in events if e.WhichOneof("payload") == "turn_metrics"][-1]
        assert 0 <= m.speech_end_to_commit_ms < 1000 and m.commit_to_first_audio_ms >= 0, m
    finally:
        await orch.stop()


# ---- the preemptive reply, against the fixed-latency fakes (a fixed, neutral turn score) ----

@contextlib.asynccontextmanager
async def _on_fakes(redis_server: RedisServer, turn_probability: float, settings: dict[str, Any] | None = None,
                    **latencies: float) -> AsyncIterator[Orchestrator]:
    """An orchestrator (LoopSettings `settings`) on the fixed-latency fakes, every pause scored
    `turn_probability`; its LLM stub tapped (`stubs.llm.sent`)."""
    server = grpc.aio.server()
    add_all(server, Latencies(turn_probability=turn_probability, **latencies))
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    orch = await Orchestrator(redis_server.url, {k: address for k in ("vad", "stt", "llm", "tts")},
                              **(settings or {})).start()
    orch.servicer.stubs.llm = Tap(orch.servicer.stubs.llm)
    try:
        yield orch
    finally:
        await orch.stop()
        await server.stop(0)


def _words() -> np.ndarray:
    """goforward's words without the clip's silences."""
    full = speech("goforward_16k.wav")
    return full[int(0.45 * RATE):speech_end(full, 512)]


async def _metrics(orch: Orchestrator, iid: str) -> list[interviews_pb2.TurnMetrics]:
    events = await orch.store.read_events(orch.store.keys.events(iid), "0-0", count=1000)
    return [e.turn_metrics for e in events if e.WhichOneof("payload") == "turn_metrics"]


async def test_a_cancelled_preemptive_reply_leaves_no_trace(redis_server: RedisServer) -> None:
    """A neutral score (0.3: UNDECIDED) at each pause: the reply is prepared at once and held. The
    candidate goes on before the fallback: it is cancelled — no audio, no playback message,
    no transcript entry, no history, no metrics of its own. At the next pause another one is
    prepared; the fallback commits the turn and that one plays, answering all the words."""
    # the fake STT says its whole sentence for every piece: FINALIZE only at the scored pauses, so the
    # pieces are the test's two (the early FINALIZE at 150 ms would also cut at the clip's word gaps)
    async with _on_fakes(redis_server, 0.3, {"finalize_at_pause_ms": 0}, stt_finalize_ms=50, llm_first_token_ms=100,
                         tts_first_audio_ms=50) as orch:
        iid, token = await orch.create()
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            greeting = await cand.wait_generations(1)
            await cand.wait_played(greeting)
            await cand.say(_words())
            await cand.pause(0.7)  # scored at 0.2 s, prepared by ~0.4 s, cancelled when speech resumes
            await cand.say(_words())
            await cand.pause(0.1)
            reply = await cand.wait_generations(2, timeout=10)
            await cand.wait_played(reply)
        sent = orch.servicer.stubs.llm.sent
        requests = [r for r in sent if r.task == llm_pb2.TASK_REPLY]
        assert len(requests) == 2, [r.task for r in sent]
        cancelled, used = requests[0].request_id, requests[1].request_id
        assert used == reply and cancelled not in cand.generations  # no audio and no playback message
        assert [m.text for m in requests[1].history if m.role == common_pb2.ROLE_AGENT] == ["Hello, welcome."]
        user = [m.text for m in requests[1].history if m.role == common_pb2.ROLE_USER]
        assert user == ["i worked on a compiler i worked on a compiler"], user  # both pieces, one message
        entries = await orch.transcript(iid)
        assert [(e.role, e.entry_id.endswith("-a")) for e in entries] == [
            (common_pb2.ROLE_AGENT, True), (common_pb2.ROLE_USER, False), (common_pb2.ROLE_AGENT, True)]
        assert all(cancelled not in e.entry_id for e in entries)
        metrics = await _metrics(orch, iid)
        assert len(metrics) == 1, metrics
        m = metrics[0]
        assert m.turn_id == reply and m.speculative and m.speculative_starts == 2 and m.speculative_cancelled == 1
        assert m.speculative_wasted_tokens >= 0
        # committed by the undecided fallback (0.3: the model leans incomplete, so lean_incomplete_wait_ms,
        # 2 s); the held reply was ready: first audio right after the commit
        assert 1900 <= m.speech_end_to_commit_ms <= 2300 and m.commit_to_first_audio_ms < 100, m


async def test_without_the_model_the_vad_params_still_apply_and_silence_decides(ai: dict, redis_server: RedisServer
                                                                                 ) -> None:
    """A VAD with no end-of-turn model refuses turn scoring in-band: the session says so once,
    asks again without it (the refused update carried the other params too) and answers after the
    VAD's silence, as before turn-taking."""
    with ServiceProcess("vad", env={"VAD_TURN_MODEL": "/nonexistent/smart-turn.onnx"}) as vad:
        async with Orchestrator.on(redis_server.url, ai, vad=vad) as orch:
            iid, token = await orch.create()
            async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
                await cand.wait_played(await cand.wait_generations(1))
                session = orch.servicer.live[iid]
                clip = speech("goforward_16k.wav")
                end = await cand.say(clip) - (len(clip) - speech_end(clip, 512))
                reply = await cand.wait_generations(2, timeout=10)
                assert session.listener.turn_scoring_refused and not session.floor.eot.on
                applied = session.listener.applied
                assert applied is not None and applied.min_silence_ms == 1200 and not applied.turn_scoring
                delay_ms = (cand.generations[reply].first_audio_offset - end) * 1000 / RATE
                # the VAD's 1.2 s min silence decided (Silero ends this clip's speech ~0.1 s before
                # the RMS end measured here); the model would have committed at ~0.2 s
                assert delay_ms >= 1000, delay_ms


def test_the_listener_passes_a_late_score_on_with_the_stops_finalize() -> None:
    """A TurnScore that comes after SPEECH_STOPPED (a loaded VAD) reaches the policy as a late
    TurnPaused carrying the stop's FINALIZE id; once the candidate speaks again it is stale."""
    from interview.v1 import vad_pb2
    from services.orchestrator.conversation.listener import Listener

    heard: list = []
    hooks = type("Hooks", (), {"heard": lambda self, e: heard.append(e)})()
    listener = Listener(vad_stub=None, stt_stub=None, hooks=hooks, clock=FakeClock(), input_rate=RATE,
                        stream_id="s", stt_provider="offline", language="en", pre_roll_ms=300, early_pause_ms=200,
                        params=common_pb2.VadParams(min_silence_ms=1200), trace_attributes={})
    listener._speech_started(0)
    listener._speech_stopped()
    stop_fid = listener.finalizing[-1]
    listener._turn_scored(vad_pb2.TurnScore(probability=0.05, pause_ms=200, pause_start_samples=16000))
    late = [e for e in heard if isinstance(e, TurnPaused)]
    assert len(late) == 1 and late[0].after_stop and late[0].finalize_id == stop_fid and late[0].span is None
    listener._turn_scored(vad_pb2.TurnScore(probability=0.9, pause_ms=200, pause_start_samples=16000))
    assert len([e for e in heard if isinstance(e, TurnPaused)]) == 1  # one late score per stop
    listener._speech_started(32000)
    listener._speech_stopped()
    listener._speech_started(48000)                                     # the candidate went on
    listener._turn_scored(vad_pb2.TurnScore(probability=0.9, pause_ms=200, pause_start_samples=40000))
    assert sum(1 for e in heard if isinstance(e, TurnPaused) and e.after_stop) == 1  # not a late one any more


async def _answer(orch: Orchestrator, pause_s: float = 0.0, **config: Any) -> str:
    """An interview on `orch` answered with goforward's words (twice, `pause_s` apart, if given);
    its id once the reply to them has played."""
    iid, token = await orch.create(**config)
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        await cand.wait_played(await cand.wait_generations(1))
        await cand.say(_words())
        if pause_s:
            await cand.pause(pause_s)
            await cand.say(_words())
        await cand.pause(0.1)
        await cand.wait_played(await cand.wait_generations(2, timeout=10))
    return iid


@pytest.mark.parametrize("finalize_at_pause_ms", [150, 0])
async def test_the_pause_is_finalized_before_its_score_comes(redis_server: RedisServer, finalize_at_pause_ms: int):
    """FINALIZE at 150 ms of pause (ORCHESTRATOR_FINALIZE_AT_PAUSE_MS), not when the turn score
    comes: with a 600 ms turn pause and a 400 ms STT finalize, the words are there when the score
    comes (a COMMIT at ~600 ms); FINALIZEd at the score (0 = off) they come 400 ms later."""
    async with _on_fakes(redis_server, 0.95, {"finalize_at_pause_ms": finalize_at_pause_ms},
                         stt_finalize_ms=400) as orch:
        iid = await _answer(orch, turn_taking=interviews_pb2.TurnTakingConfig(turn_pause_ms=600))
        m = (await _metrics(orch, iid))[-1]
        if finalize_at_pause_ms:
            assert 550 <= m.speech_end_to_commit_ms < 850, m
        else:
            assert m.speech_end_to_commit_ms >= 950, m
        entries = [e.text for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
        assert entries and all(e.startswith("i worked on a compiler") for e in entries), entries


async def test_a_hold_prepares_its_reply_before_the_fallback_commits(redis_server: RedisServer) -> None:
    """A HOLD (score 0.05): the reply is not prepared at the pause (the candidate usually goes on)
    but 1 s before the 3 s fallback, so it plays the moment the fallback commits."""
    async with _on_fakes(redis_server, 0.05, stt_finalize_ms=50, llm_first_token_ms=400,
                         tts_first_audio_ms=120) as orch:
        iid = await _answer(orch)
        assert len([r for r in orch.servicer.stubs.llm.sent if r.task == llm_pb2.TASK_REPLY]) == 1
        m = (await _metrics(orch, iid))[-1]
        assert m.speculative and m.speculative_starts == 1 and m.speculative_cancelled == 0, m
        # the HOLD fallback (3 s) committed; the reply (LLM 400 + TTS 120 ms) was ready by then
        assert 2900 <= m.speech_end_to_commit_ms <= 3300 and m.commit_to_first_audio_ms < 150, m


async def test_a_false_end_teaches_the_session_to_wait_at_that_pause(redis_server: RedisServer) -> None:
    """Every pause scores complete (0.95): the first one (0.9 s) commits at once, and the candidate
    goes on while its reply is being prepared (withdrawn); the next complete-sounding pause then
    waits that pause + the margin before committing (PauseLearning), not 200 ms."""
    async with _on_fakes(redis_server, 0.95, {"finalize_at_pause_ms": 0}, stt_finalize_ms=50,
                         llm_first_token_ms=1000, tts_first_audio_ms=50) as orch:
        iid = await _answer(orch, pause_s=0.9)  # committed at ~0.25 s: its reply (LLM 1 s) is still coming
        waits = [m.speech_end_to_commit_ms for m in await _metrics(orch, iid)]
        assert len(waits) == 1 and 1000 <= waits[0] <= 1600, waits  # the 0.9 s pause (+ event delay) + 250 ms
        entries = [e for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
        assert len(entries) == 1, [e.text for e in entries]  # the withdrawn reply left both pieces one answer
