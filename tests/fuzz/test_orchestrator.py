"""Fuzzing the orchestrator's public gRPC surface through its real server process: every method of
the Interviews API (random field values, real and unknown interview ids, good, read-only, missing
and garbage API keys) and Session.Connect (random message streams, out-of-order and oversized
messages, wrong sample rates, a valid join followed by noise).

Invariant per case: a clear status with a readable message, the process alive, and a live
candidate session on the same process (join, greeting, a spoken answer, a reply) unaffected.
The AI services are the fixed-latency fakes (tests/fakes/ai_services.py); Redis is real.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from google.protobuf import message_factory
from hypothesis import example, given, strategies as st

from interview.v1 import common_pb2, interviews_pb2, interviews_pb2_grpc, session_pb2, session_pb2_grpc
from services.common.audio import read_wav
from tests.fuzz.protofuzz import CASES, CLEAR, SAMPLE_RATES, Canary, check_status, messages, stream_call
from tests.load.orchestrator_sessions import fakes_process
from tests.support.procs import ROOT, RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(900)

KEY = "fuzz-" + secrets.token_hex(16)
RO_KEY = "fuzzro-" + secrets.token_hex(16)
AUTH = (("authorization", f"Bearer {KEY}"),)
MB = 1024 * 1024
RATE = 16000
CHUNK = 512
SPEECH, _ = read_wav(ROOT / "tests/fixtures/speech/goforward_16k.wav")
SERVICE = interviews_pb2.DESCRIPTOR.services_by_name["Interviews"]


@pytest.fixture(scope="module")
def orchestrator(redis_server: RedisServer) -> Iterator[ServiceProcess]:
    with fakes_process({"stt_finalize_ms": 50.0, "llm_first_token_ms": 50.0, "tts_first_audio_ms": 50.0}) as (ai, _):
        env = {"REDIS_URL": redis_server.url, "ORCHESTRATOR_API_KEYS": f"fuzz:{KEY},ro:{RO_KEY}:ro",
               "ORCHESTRATOR_JOIN_TOKEN_SECRET": secrets.token_hex(32),
               "ORCHESTRATOR_KEY_PREFIX": f"fz{secrets.token_hex(3)}:", "ORCHESTRATOR_WATCH_BLOCK_MS": "300",
               **{f"{n}_ADDR": ai for n in ("VAD", "STT", "LLM", "TTS")}}
        with ServiceProcess("orchestrator", env=env) as proc:
            yield proc


def _create(channel: grpc.Channel, template: str = "demo") -> interviews_pb2.CreateInterviewResponse:
    stub = interviews_pb2_grpc.InterviewsStub(channel)
    return stub.CreateInterview(interviews_pb2.CreateInterviewRequest(
        template=template, candidate=interviews_pb2.Candidate(name="Fuzz")), metadata=AUTH, timeout=10)


async def _candidate_turn(address: str) -> None:
    """The canary: a candidate joins, hears the greeting, answers, and hears a reply."""
    async with grpc.aio.insecure_channel(address) as ch:
        created = await interviews_pb2_grpc.InterviewsStub(ch).CreateInterview(interviews_pb2.CreateInterviewRequest(
            template="demo", candidate=interviews_pb2.Candidate(name="Canary")), metadata=AUTH, timeout=10)
        out: asyncio.Queue[session_pb2.ClientMessage | None] = asyncio.Queue()
        out.put_nowait(session_pb2.ClientMessage(join=session_pb2.Join(
            interview_id=created.interview.id, join_token=created.join_token,
            audio_format=common_pb2.AudioFormat(sample_rate_hz=RATE), playback_sample_rate_hz=RATE)))

        async def requests():
            while (m := await out.get()) is not None:
                yield m

        call = session_pb2_grpc.SessionStub(ch).Connect(requests())
        finished: asyncio.Queue[str] = asyncio.Queue()

        async def read() -> None:
            async for msg in call:
                if msg.HasField("audio") and msg.audio.last:
                    out.put_nowait(session_pb2.ClientMessage(mark=session_pb2.PlaybackMark(
                        generation_id=msg.audio.generation_id, finished=True)))
                    finished.put_nowait(msg.audio.generation_id)

        reader = asyncio.create_task(read())
        offset = 0

        async def send(samples: np.ndarray) -> None:
            nonlocal offset
            t0 = time.monotonic()
            for i in range(0, len(samples) - CHUNK + 1, CHUNK):
                out.put_nowait(session_pb2.ClientMessage(audio=common_pb2.AudioChunk(
                    pcm=samples[i:i + CHUNK].tobytes(), offset_samples=offset)))
                offset += CHUNK
                await asyncio.sleep(max(0.0, t0 + (i + CHUNK) / RATE - time.monotonic()))

        try:
            greeting = asyncio.create_task(finished.get())
            deadline = time.monotonic() + 10
            while not greeting.done():
                assert time.monotonic() < deadline, "no greeting within 10 s of the join"
                assert not reader.done(), f"session ended before the greeting: {reader.exception()}"
                await send(np.zeros(CHUNK * 4, np.int16))
            await send(SPEECH)
            reply = asyncio.create_task(finished.get())
            deadline = time.monotonic() + 10
            while not reply.done():
                assert time.monotonic() < deadline, "no reply within 10 s of the answer"
                await send(np.zeros(CHUNK * 4, np.int16))
        finally:
            out.put_nowait(session_pb2.ClientMessage(leave=session_pb2.Leave(reason="hangup")))
            out.put_nowait(None)
            try:
                await asyncio.wait_for(reader, 3)
            except (asyncio.TimeoutError, grpc.aio.AioRpcError):
                call.cancel()


def test_fuzz_interviews_api(orchestrator: ServiceProcess) -> None:
    channel = grpc.insecure_channel(orchestrator.address, options=[("grpc.max_send_message_length", 8 * MB)])
    ids = [_create(channel).interview.id for _ in range(3)]
    with pytest.raises(grpc.RpcError) as unsupported:  # a language the STT service does not declare
        interviews_pb2_grpc.InterviewsStub(channel).CreateInterview(interviews_pb2.CreateInterviewRequest(
            template="demo", config=interviews_pb2.InterviewConfig(language="xx-XX")), metadata=AUTH, timeout=10)
    assert unsupported.value.code() == grpc.StatusCode.INVALID_ARGUMENT, unsupported.value.details()
    assert "config.language" in unsupported.value.details() and "fake: en" in unsupported.value.details()
    ended = _create(channel).interview.id
    interviews_pb2_grpc.InterviewsStub(channel).EndInterview(
        interviews_pb2.EndInterviewRequest(interview_id=ended), metadata=AUTH, timeout=10)
    fixed = {"interview_id": st.one_of(st.sampled_from([*ids, ended, "", "iv_missing", "../../etc", "iv_" + "x" * 500]),
                                       st.text(max_size=20)),
             "template": st.one_of(st.sampled_from(["demo", "backend-engineer", "nope", ""]), st.text(max_size=10)),
             "after_event_id": st.sampled_from(["", "0-0", "$", "garbage", "99999999999999-0", "-1"]),
             "page_token": st.sampled_from(["", "garbage", "0", "-1"]),
             # checked against what the (fake) STT and TTS declare: English, any voice
             "language": st.one_of(st.sampled_from(["", "en", "EN-us", "en-GB", "xx-XX", "fr-FR", "en_US"]),
                                   st.text(max_size=12)),
             "tts_voice": st.sampled_from(["", "rms", "nobody", "x" * 101])}
    auth = st.sampled_from([AUTH, AUTH, AUTH, (("authorization", f"Bearer {RO_KEY}"),), (),
                            (("authorization", "Bearer nope"),), (("authorization", "Basic Zm9vOmJhcg=="),)])

    with Canary("orchestrator-session", lambda: _candidate_turn(orchestrator.address), pause_s=0.5) as canary:
        try:
            for method in SERVICE.methods:
                endpoint = f"Interviews.{method.name}"
                req_cls = message_factory.GetMessageClass(method.input_type)
                resp_cls = message_factory.GetMessageClass(method.output_type)
                path = f"/{SERVICE.full_name}/{method.name}"
                streaming = method.name == "WatchEvents"
                caller = (channel.unary_stream if streaming else channel.unary_unary)(
                    path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=resp_cls.FromString)
                big = req_cls()
                if "interview_id" in req_cls.DESCRIPTOR.fields_by_name:
                    big.interview_id = "x" * (5 * MB)  # over the message limit

                @given(request=messages(method.input_type, fixed=fixed, max_depth=4), metadata=auth)
                @example(request=big, metadata=AUTH)
                @example(request=req_cls(), metadata=AUTH)
                def run(request, metadata) -> None:
                    # Evaluate answers UNIMPLEMENTED until the evaluation issue lands: clear enough
                    allowed = CLEAR | {grpc.StatusCode.UNIMPLEMENTED} if method.name == "Evaluate" else CLEAR
                    try:
                        if streaming:  # a live stream: read what comes within a second, then stop
                            allowed = CLEAR | {grpc.StatusCode.DEADLINE_EXCEEDED}
                            for _ in caller(request, metadata=metadata, timeout=1.0):
                                pass
                        else:
                            caller(request, metadata=metadata, timeout=10)
                        code, details = grpc.StatusCode.OK, None
                    except grpc.RpcError as exc:
                        code, details = exc.code(), exc.details()
                    CASES[endpoint] += 1
                    check_status(endpoint, code, details, allowed)
                    assert orchestrator.proc.poll() is None, orchestrator.logs()[-3000:]

                run()
        finally:
            channel.close()
    canary.assert_healthy()


def test_fuzz_session_connect(orchestrator: ServiceProcess) -> None:
    channel = grpc.insecure_channel(orchestrator.address, options=[("grpc.max_send_message_length", 8 * MB)])
    any_msg = messages(session_pb2.ClientMessage.DESCRIPTOR, fixed={"sample_rate_hz": SAMPLE_RATES})
    # a valid join (a fresh interview each case), then random messages: audio of odd sizes and
    # offsets, frames, marks for unknown generations, a second join, consent flips, leave
    after_join = st.tuples(st.sampled_from([RATE, 8000, 48000, 44100, 0, -1]), st.lists(any_msg, max_size=10))
    streams = st.one_of(st.lists(any_msg, max_size=6).map(lambda m: ("random", m)),
                        after_join.map(lambda t: ("joined", t)))
    oversized = [session_pb2.ClientMessage(audio=common_pb2.AudioChunk(pcm=b"\0" * (5 * MB)))]

    @given(stream=streams)
    @example(stream=("joined", (RATE, oversized)))
    @example(stream=("joined", (RATE, [session_pb2.ClientMessage(audio=common_pb2.AudioChunk(pcm=b"\1" * 1023))])))
    @example(stream=("random", [session_pb2.ClientMessage(audio=common_pb2.AudioChunk(pcm=b"\0" * 1024))]))
    def run(stream) -> None:
        kind, payload = stream
        if kind == "joined":
            rate, rest = payload
            created = _create(channel)
            requests = [session_pb2.ClientMessage(join=session_pb2.Join(
                interview_id=created.interview.id, join_token=created.join_token,
                audio_format=common_pb2.AudioFormat(sample_rate_hz=rate))), *rest]
        else:
            requests = payload
        code, details, _ = stream_call(channel, "/interview.v1.Session/Connect", requests,
                                       session_pb2.ServerMessage, 10.0)
        CASES["Session.Connect"] += 1
        assert orchestrator.proc.poll() is None, orchestrator.logs()[-3000:]
        check_status("Session.Connect", code, details)

    with Canary("orchestrator-session", lambda: _candidate_turn(orchestrator.address), pause_s=0.5) as canary:
        try:
            run()
        finally:
            channel.close()
    canary.assert_healthy()
