"""One conversational turn is one trace across the real service processes: the orchestrator's
'turn' span (end-of-speech decision -> first audio sent) is the root, with the stages the vad, stt,
llm and tts processes open from the per-turn TraceContext under it, and media's playback start
under the generation whose audio carries that context. Spans arrive over OTLP/gRPC at an in-test
receiver, as they would at a collector."""
from __future__ import annotations

import asyncio
import contextlib
import secrets

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from interview.v1 import session_pb2
from services.common import telemetry
from services.media.playback import Playback
from services.orchestrator.api.client import InterviewsClient
from tests.fakes.ai_services import speech_end
from tests.load.harness import load_recordings
from tests.load.orchestrator_sessions import RATE, Candidate, Clip, Ticker
from tests.support.otlp import OtlpReceiver
from tests.support.procs import RedisServer, ServiceProcess

CHUNK = 512


class TracedCandidate(Candidate):
    """The media side, keeping each generation's first audio message (it carries the trace)."""

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.first_audio: dict[str, session_pb2.AgentAudio] = {}
        super().__init__(*args, **kwargs)

    async def _read(self) -> None:
        async for msg in self.call:
            if msg.WhichOneof("msg") == "audio" and msg.audio.chunk.pcm:
                self.first_audio.setdefault(msg.audio.generation_id, msg.audio)
                if msg.audio.generation_id not in self._samples:
                    self._samples[msg.audio.generation_id] = 0
                    self.generations.put_nowait((msg.audio.generation_id, 0.0))
            if msg.WhichOneof("msg") == "audio" and msg.audio.last:
                gid = msg.audio.generation_id
                self._out.put_nowait(session_pb2.ClientMessage(mark=session_pb2.PlaybackMark(
                    generation_id=gid, samples_played=1, finished=True, input_offset_samples=self.offset)))
                self._finished.setdefault(gid, asyncio.Event()).set()


def media_playback_span(audio: session_pb2.AgentAudio, monkeypatch) -> object:  # type: ignore[no-untyped-def]
    """media's Playback (the real class) opens its span from the audio's trace; recorded in memory."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "false")  # the suite's default; an SDK provider honours it
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(telemetry.trace, "get_tracer", lambda name, *a, **k: provider.get_tracer(name))
    playback = Playback(5.0, on_mark=lambda _m: None)
    playback.add(audio)
    last = session_pb2.AgentAudio()
    last.CopyFrom(audio)
    last.last = True  # flushes the resampler's delay line: the first samples are queued
    playback.add(last)
    playback.next_frame()
    (span,) = exporter.get_finished_spans()
    return span


async def test_one_turn_is_one_trace_across_the_service_processes(monkeypatch):
    receiver = await OtlpReceiver().start()
    key = "trace-" + secrets.token_hex(8)
    try:
        with contextlib.ExitStack() as stack:
            redis_server = stack.enter_context(RedisServer())
            ai = {name: stack.enter_context(ServiceProcess(name, env={**receiver.env(name), **extra}))
                  for name, extra in (("vad", {}), ("stt", {}), ("llm", {}), ("tts", {"TTS_PROVIDERS": "offline"}))}
            orch = stack.enter_context(ServiceProcess("orchestrator", env={
                **receiver.env("orchestrator"), "REDIS_URL": redis_server.url, "ORCHESTRATOR_API_KEYS": f"t:{key}",
                "ORCHESTRATOR_JOIN_TOKEN_SECRET": secrets.token_hex(32), "ORCHESTRATOR_CONVERSATIONAL_SILENCE_MS": "600",
                **{f"{n.upper()}_ADDR": p.address for n, p in ai.items()}}))
            rec = load_recordings(RATE, ("goforward_16k.wav",))[0]
            clip = Clip(rec.samples, speech_end(rec.samples, CHUNK))
            ticker = Ticker(CHUNK)
            ticking = asyncio.create_task(ticker.run())
            async with InterviewsClient(orch.address, key) as api:
                created = await api.create(template="demo", candidate_name="trace")
                c = TracedCandidate(orch.address, created.interview.id, created.join_token, CHUNK)
                ticker.candidates.add(c)
                try:
                    greeting, _ = await asyncio.wait_for(c.generations.get(), 30)
                    await c.finished(greeting, 60)
                    await c.speak(clip)
                    reply, _ = await asyncio.wait_for(c.generations.get(), 30)
                    await c.finished(reply, 60)
                finally:
                    ticker.candidates.discard(c)
                    ticking.cancel()
                    await c.close()
            turns = await receiver.wait_for(lambda s: s.name == "turn" and s.service == "interviewer-orchestrator"
                                            and s.attributes.get("turn.outcome") == "answered", timeout=15)
            assert turns, f"no answered turn span; got {sorted({(s.service, s.name) for s in receiver.spans})}"
            turn = turns[0]
            names = ("stt.finalize", "agent.generate", "llm.generate", "tts.first_piece")
            for name in names:
                await receiver.wait_for(lambda s: s.trace_id == turn.trace_id and s.name == name, timeout=10)
    finally:
        await receiver.stop()

    tree = {s.name: s for s in receiver.spans if s.trace_id == turn.trace_id}
    assert set(names) <= set(tree), sorted(tree)
    stt, gen, llm, tts = (tree[n] for n in names)
    by_id = {s.span_id: s for s in tree.values()}
    # parents across processes
    assert stt.parent_span_id == turn.span_id and stt.service == "interviewer-stt"
    assert gen.parent_span_id == turn.span_id and gen.attributes["speculative"] in ("False", "0", "false")
    assert llm.parent_span_id == gen.span_id and llm.service == "interviewer-llm"
    assert tts.parent_span_id == gen.span_id and tts.service == "interviewer-tts"
    assert turn.parent_span_id == "" and by_id[gen.parent_span_id] is turn
    # durations and stage order: the turn starts at the end-of-speech decision, ends at first audio sent
    for s in (turn, stt, gen, llm, tts):
        assert s.end_ns > s.start_ns, s
    assert turn.start_ns <= stt.start_ns < stt.end_ns <= gen.start_ns <= llm.start_ns
    assert llm.start_ns < tts.start_ns < tts.end_ns <= turn.end_ns
    assert turn.attributes["generation_id"] == reply

    # media: its playback start joins the same trace, under the generation the audio belongs to
    span = media_playback_span(c.first_audio[reply], monkeypatch)
    assert span.name == "media.playback_start"
    assert format(span.context.trace_id, "032x") == turn.trace_id
    assert format(span.parent.span_id, "016x") == gen.span_id
    assert span.attributes["played"] is True
