"""Barge-in cancel (with a synthesis in flight) and every kind of bad input: the right status, a
message a person understands, and the server keeps serving."""
from __future__ import annotations

import asyncio
import os
import time

import grpc
import pytest

from interview.v1 import tts_pb2, tts_pb2_grpc
from services.tts.synthesis import Synthesis
from tests.tts.conftest import audio_of, collect, done_of, request_stream

LONG = " ".join(["and then we would talk about the design of the system in some detail"] * 3) + "."


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


async def test_cancel_while_a_piece_is_being_synthesised(tts_server) -> None:
    stub = await tts_server(TTS_MAX_PIECE_WORDS="60")
    spawned: list[int] = []
    second_spawned = asyncio.Event()

    def on_spawn(pid: int) -> None:
        spawned.append(pid)
        if len(spawned) == 2:
            second_spawned.set()

    stub.servicer.offline.on_spawn = on_spawn
    call = stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Okay, sounds good. ", LONG]))
    received = []

    async def read() -> None:
        async for r in call:
            received.append(r)

    reader = asyncio.create_task(read())
    await asyncio.wait_for(second_spawned.wait(), 10)
    assert _alive(spawned[1]), "the long piece finished before the test could cancel it"
    assert received and all(r.audio.segment_index == 0 for r in received if r.WhichOneof("msg") == "audio")
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader
    # The piece in flight at the cancel never reaches the caller.
    assert all(r.audio.segment_index == 0 for r in received if r.WhichOneof("msg") == "audio")
    deadline = time.monotonic() + 1.0
    while (_alive(spawned[1]) or stub.runtime.admission.active) and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not _alive(spawned[1]), "the in-flight flite process outlived the cancel"
    assert stub.runtime.admission.active == 0
    assert len(spawned) == 2  # no further piece was started
    # The server goes on serving.
    responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Still here."])))
    assert done_of(responses).segments == 1


async def test_cancel_race_in_the_pipeline(tts_server) -> None:
    """What a cancelled gRPC call does to the handler, at the exact moment a piece is in flight:
    not one more response is produced, and the flite process is killed."""
    stub = await tts_server(TTS_MAX_PIECE_WORDS="60")
    servicer = stub.servicer
    in_flight = asyncio.Event()
    pids: list[int] = []
    servicer.offline.on_spawn = lambda pid: (pids.append(pid), len(pids) == 2 and in_flight.set())
    utterance, start = servicer.check(tts_pb2.TtsConfig())
    synthesis = Synthesis(servicer.chain, utterance, servicer.limits, start)
    out: list[tts_pb2.SynthesizeResponse] = []

    async def consume() -> None:
        async for r in synthesis.run(request_stream(None, ["Okay, sounds good. ", LONG])):
            out.append(r)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(in_flight.wait(), 10)
    assert _alive(pids[1])
    produced = len(out)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert len(out) == produced
    assert not _alive(pids[1]) and len(pids) == 2


def _expect(stub, messages, code: grpc.StatusCode, words: str) -> None:
    """Through grpc's sync client: the aio client can report INTERNAL "Internal error from Core"
    instead of the server's status when the server ends a stream the client is still writing
    (grpc/grpc#36066)."""
    with grpc.insecure_channel(stub.address) as channel:
        call = tts_pb2_grpc.TtsStub(channel).Synthesize(iter(messages), timeout=10)
        with pytest.raises(grpc.RpcError) as err:
            list(call)
    assert err.value.code() == code, err.value.details()
    assert words in err.value.details(), err.value.details()


CONFIG = tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig())
TEXT = tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(text="Hello there. "))
END = tts_pb2.SynthesizeRequest(end=tts_pb2.EndOfText())


@pytest.mark.parametrize("messages, code, words", [
    ((), grpc.StatusCode.INVALID_ARGUMENT, "empty stream"),
    ((TEXT, END), grpc.StatusCode.INVALID_ARGUMENT, "first message must be a config"),
    ((tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(sample_rate_hz=12345)), TEXT, END),
     grpc.StatusCode.INVALID_ARGUMENT, "unsupported sample_rate_hz 12345: use one of 8000"),
    ((tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(voice="nobody")), TEXT, END),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown voice 'nobody': the offline voices are rms, slt, awb, kal16, kal, espeak-ng"),
    ((tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(provider="polly")), TEXT, END),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown provider 'polly'"),
    ((tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(provider="cartesia")), TEXT, END),
     grpc.StatusCode.INVALID_ARGUMENT, "'cartesia' is not configured on this server"),
    ((tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(speed=3)), TEXT, END),
     grpc.StatusCode.INVALID_ARGUMENT, "speed 3.0 is out of range"),
    ((tts_pb2.SynthesizeRequest(config=tts_pb2.TtsConfig(language="xx")), TEXT, END),
     grpc.StatusCode.INVALID_ARGUMENT, "language 'xx' is not available (offline: en, af"),
    ((CONFIG, TEXT, CONFIG, END), grpc.StatusCode.INVALID_ARGUMENT, "config may only be sent once"),
    ((CONFIG, tts_pb2.SynthesizeRequest(), END), grpc.StatusCode.INVALID_ARGUMENT, "empty SynthesizeRequest"),
    ((CONFIG, *[tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(text="x" * 60))] * 3, END),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "text too long: this stream sent 180 characters, the limit is 150"),
])
async def test_bad_input(tts_server, messages, code, words) -> None:
    stub = await tts_server(TTS_MAX_TEXT_CHARS="150")
    await asyncio.to_thread(_expect, stub, messages, code, words)
    responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Still serving."])))
    assert len(audio_of(responses)) > 0


async def test_every_provider_failing_is_unavailable(tts_server, monkeypatch) -> None:
    stub = await tts_server()
    monkeypatch.setenv("PATH", "/nonexistent")  # neither flite nor espeak-ng can be started
    await asyncio.to_thread(_expect, stub, [CONFIG, TEXT, END], grpc.StatusCode.UNAVAILABLE,
                            "speech synthesis failed on every provider")
    monkeypatch.undo()
    assert done_of(await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["Back."])))).segments == 1


async def test_half_close_without_end_speaks_the_rest(tts_server) -> None:
    stub = await tts_server()
    responses = await collect(stub.Synthesize(request_stream(tts_pb2.TtsConfig(), ["No end marker"], end=False)))
    assert done_of(responses).spoken_text == "No end marker"
