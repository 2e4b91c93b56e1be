"""Per-turn records end to end (real services): the turn-metrics event, one trace per turn across
the STT / LLM / TTS requests and the audio down, no stale audio after CLEAR with a slow TTS, and
the history bounded by TASK_SUMMARIZE (truncation when the summariser fails)."""
from __future__ import annotations

from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from interview.v1 import llm_pb2
from tests.orchestrator.test_session_loop import LONG_GREETING
from tests.orchestrator.session_support import Candidate, Orchestrator, Tap, plan, speech
from tests.support.procs import RedisServer

pytestmark = pytest.mark.timeout(90)


def _traceparents(messages: list[Any], field: str) -> set[str]:
    out = set()
    for m in messages:
        if m.WhichOneof("msg") == field:
            out.add(getattr(m, field).trace.traceparent)
    return out


async def test_turn_metrics_and_one_trace_per_turn(ai: dict, redis_server: RedisServer, monkeypatch) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)  # the suite disables the SDK by default
    if not trace.get_tracer_provider().get_tracer("t").start_span("x").get_span_context().is_valid:
        trace.set_tracer_provider(TracerProvider())  # spans need a real provider (set once per process)
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}).start()
    stubs = orch.servicer.stubs
    stubs.stt, stubs.llm, stubs.tts = Tap(stubs.stt), Tap(stubs.llm), Tap(stubs.tts)
    try:
        iid, token = await orch.create()
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            await cand.wait_played(await cand.wait_generations(1))
            await cand.say(speech("goforward_16k.wav"))
            await cand.pause(1.5)
            reply = await cand.wait_generations(2)
            await cand.wait_played(reply)
        events = await orch.store.read_events(orch.store.keys.events(iid), "0-0", count=1000)
        metrics = [e.turn_metrics for e in events if e.WhichOneof("payload") == "turn_metrics"]
        assert len(metrics) == 1, metrics
        m = metrics[0]
        assert m.turn_id == reply and not m.interrupted
        steps = [m.stt_final_ms, m.llm_first_token_ms, m.tts_first_audio_ms, m.first_audio_sent_ms]
        assert all(s >= 0 for s in steps) and steps == sorted(steps), steps
        assert m.first_audio_sent_ms < 5000
        tp = m.traceparent
        assert tp.startswith("00-") and len(tp.split("-")[1]) == 32
        assert tp in _traceparents(stubs.stt.sent, "finalize")
        # LLM, TTS and media see the turn's trace through the generation's own span (agent.generate)
        llm_turn = [r for r in stubs.llm.sent if r.request_id == reply]
        assert len(llm_turn) == 1 and llm_turn[0].task == llm_pb2.TASK_REPLY
        gen_tp = llm_turn[0].trace.traceparent
        assert gen_tp != tp and gen_tp.split("-")[1] == tp.split("-")[1]
        assert gen_tp in _traceparents(stubs.tts.sent, "text")
        audio = [msg.audio for _, msg in cand.messages if msg.WhichOneof("msg") == "audio"
                 and msg.audio.generation_id == reply and msg.audio.chunk.pcm]
        assert audio and {a.chunk.trace.traceparent for a in audio} == {gen_tp}
        greeting_tp = {r.trace.traceparent for r in stubs.llm.sent if r.task == llm_pb2.TASK_GREETING}
        assert tp not in greeting_tp  # a new trace per turn
    finally:
        await orch.stop()




async def test_no_stale_audio_after_clear_with_a_slow_tts(ai: dict, redis_server: RedisServer) -> None:
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}).start()
    stubs = orch.servicer.stubs
    stubs.tts = Tap(stubs.tts, delay_s=0.15)  # every TTS message arrives late: chunks are in flight at CLEAR
    try:
        iid, token = await orch.create(plan=plan(LONG_GREETING))
        async with Candidate(orch.address, iid, token=token) as cand:
            gid = await cand.wait_generations(1, timeout=10)
            g = cand.generations[gid]
            await cand.wait_for(lambda: g.played >= 16000, what="1 s of the greeting played")
            await cand.say(speech("lecture_60s_16k.wav")[16000 * 2: 16000 * 5])
            await cand.wait_for(lambda: g.cleared, what="CLEAR")
            await cand.pause(2.0)  # the slowed TTS would still be delivering the greeting now
            assert g.after_clear == 0  # nothing of it came down after CLEAR, not even its end marker
        entries = await orch.transcript(iid)
        assert entries[0].interrupted and LONG_GREETING.startswith(entries[0].text.rstrip(".,"))
    finally:
        await orch.stop()


@pytest.mark.parametrize("summariser_works", [True, False])
async def test_history_is_bounded_by_summaries_or_truncation(ai: dict, redis_server: RedisServer,
                                                             summariser_works: bool) -> None:
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()},
                              history_max_messages=2, history_max_chars=24_000).start()
    stubs = orch.servicer.stubs
    if not summariser_works:
        real = stubs.llm

        class NoSummaries:
            def Generate(self, request: llm_pb2.GenerateRequest, **kw: Any) -> Any:
                if request.task == llm_pb2.TASK_SUMMARIZE:
                    request = llm_pb2.GenerateRequest()  # refused by the LLM service: INVALID_ARGUMENT
                return real.Generate(request, **kw)
        stubs.llm = NoSummaries()
    try:
        iid, token = await orch.create()
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            await cand.wait_played(await cand.wait_generations(1))
            session = orch.servicer.live[iid]
            await cand.say(speech("goforward_16k.wav"))  # greeting + answer + reply > 2 messages
            await cand.pause(1.5)
            await cand.wait_played(await cand.wait_generations(2))
            await cand.wait_for(lambda: session.floor.turn is None, what="reply over")
            h = session.history
            await cand.wait_for(lambda: h.compactions + h.truncations >= 1, what="history compacted")
            assert len(h.messages) <= h.max_messages + 2
            if summariser_works:
                assert h.compactions >= 1 and h.summary and h.truncations == 0
            else:
                assert h.truncations >= 1 and h.compactions == 0 and not h.summary
    finally:
        await orch.stop()
