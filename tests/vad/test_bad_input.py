"""Bad input gets a clear status (or an in-band Problem for params), and a stream already running
alongside it is not disturbed: the bystander's events still equal the reference."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import numpy as np
import pytest

from interview.v1 import common_pb2, vad_pb2, vad_pb2_grpc
from services.common.clock import FakeClock
from services.common.server import ServerSettings, ServiceRuntime
from services.vad.batcher import Batcher
from services.vad.detector import Params
from services.vad.model import SileroModel
from services.vad.servicer import VadServicer
from tests.support.procs import free_port
from tests.vad.helpers import PHONE, Result, detect, load, requests

AUDIO = load(PHONE.name)[:16000 * 12]
_reference: list[tuple[int, int, int]] = []


async def expected(channel: grpc.aio.Channel) -> list[tuple[int, int, int]]:
    if not _reference:
        _reference.extend((await detect(channel, requests(AUDIO))).pairs())
    return _reference


async def with_bystander(channel: grpc.aio.Channel, bad: Callable[[], Awaitable[None]]) -> None:
    """Run `bad` while another stream is half-way through its audio, then finish that stream and
    check it saw exactly the events it sees on a quiet server."""
    want = await expected(channel)
    reqs = requests(AUDIO)
    half = len(reqs) // 2
    gate = asyncio.Event()
    reached = asyncio.Event()

    async def gen() -> AsyncIterator[vad_pb2.DetectRequest]:
        for i, r in enumerate(reqs):
            if i == half:
                reached.set()
                await gate.wait()
            yield r

    async def bystander() -> list[tuple[int, int, int]]:
        events = [r.event async for r in vad_pb2_grpc.VadStub(channel).Detect(gen(), timeout=60)
                  if r.WhichOneof("msg") == "event"]
        return [(e.type, e.offset_samples, e.decided_at_samples) for e in events]

    task = asyncio.create_task(bystander())
    await reached.wait()
    try:
        await bad()
    finally:
        gate.set()
    assert await task == want


def audio(pcm: bytes, offset: int = 0) -> vad_pb2.DetectRequest:
    return vad_pb2.DetectRequest(audio=common_pb2.AudioChunk(pcm=pcm, offset_samples=offset))


def config(rate: int = 16000, **params) -> vad_pb2.DetectRequest:
    return vad_pb2.DetectRequest(config=vad_pb2.VadConfig(sample_rate_hz=rate, params=common_pb2.VadParams(**params)))


SILENCE = np.zeros(512, np.int16).tobytes()

CASES = {
    "rate 44100": ([config(44100), audio(SILENCE)], "sample_rate_hz=44100: the VAD accepts PCM s16le mono at 16000 or 8000 Hz"),
    "no rate": ([config(0)], "no sample_rate_hz"),
    "odd byte count": ([config(), audio(SILENCE), audio(b"\0" * 1023, 512)], "1023 bytes: PCM s16le needs an even number"),
    "audio before config": ([audio(SILENCE), config()], "the first message must be config"),
    "params before config": ([vad_pb2.DetectRequest(params=common_pb2.VadParams(min_silence_ms=5))],
                             "the first message must be config"),
    "config params out of range": ([config(activation_threshold=1.5)], "config.params: activation_threshold=1.5 is out of range"),
    "second config": ([config(), audio(SILENCE), config()], "config was already sent"),
    "empty request": ([config(), vad_pb2.DetectRequest()], "empty DetectRequest"),
    "offset goes back": ([config(), audio(SILENCE, 1000), audio(SILENCE, 1200)],
                         "offset_samples=1200 goes back before the end of the previous audio (1512)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_bad_stream_ends_with_invalid_argument_and_a_clear_message(channel, case):
    reqs, message = CASES[case]

    async def bad() -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await detect(channel, reqs)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details()

    await with_bystander(channel, bad)


async def test_out_of_range_params_update_is_a_problem_and_the_stream_keeps_its_old_params(channel):
    reqs = requests(AUDIO, updates={512 * 100: {"min_silence_ms": 90_000, "activation_threshold": 0.9},
                                    512 * 200: {"activation_threshold": 0.3}})
    result: Result = Result()

    async def bad() -> None:
        result.__dict__.update((await detect(channel, reqs)).__dict__)

    await with_bystander(channel, bad)
    assert [(p.code, p.field) for p in result.problems] == [(3, "min_silence_ms"), (3, "deactivation_threshold")]
    assert "min_silence_ms=90000 is out of range: accepted 0..60000" in result.problems[0].message
    assert "previous params stay in effect" in result.problems[0].message
    assert result.applied == []  # neither update applied (not even the valid half of the first)
    assert result.pairs() == await expected(channel)


async def test_a_10mb_chunk_is_refused_by_grpc_and_other_streams_go_on(channel):
    async def bad() -> None:
        big = np.zeros(5 * 1024 * 1024, np.int16).tobytes()  # 10 MB > the 4 MB message limit
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await detect(channel, [config(), audio(big)])
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    await with_bystander(channel, bad)
    # and a new stream afterwards is served normally
    assert (await detect(channel, requests(AUDIO))).pairs() == await expected(channel)


async def test_a_stream_idle_for_minutes_ends_with_deadline_exceeded_and_frees_its_slot():
    clock = FakeClock()
    runtime = ServiceRuntime("vad", ServerSettings(port=free_port()))
    batcher = Batcher(SileroModel())
    await batcher.start()
    runtime.add("interview.v1.Vad", vad_pb2_grpc.add_VadServicer_to_server,
                VadServicer(batcher, Params(), idle_timeout_s=300, clock=clock))
    await runtime.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{runtime.port}") as ch:
            idle = vad_pb2_grpc.VadStub(ch).Detect(timeout=30)
            busy = vad_pb2_grpc.VadStub(ch).Detect(timeout=30)
            for call in (idle, busy):
                await call.write(config(min_speech_ms=0))
                await call.write(audio(SILENCE))
            await asyncio.sleep(0.2)  # let the server take both
            await clock.advance(200)
            await busy.write(audio(SILENCE, 512))  # activity re-arms the busy stream's timer
            await asyncio.sleep(0.2)
            await clock.advance(150)  # idle: 350 s without a message; busy: 150 s
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await idle.read()
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "no message for 300 s" in err.value.details()
            await busy.write(audio(np.full(512, 0, np.int16).tobytes(), 1024))
            await busy.done_writing()
            assert [r async for r in busy] == []  # silence: no events, and a clean end (OK)
            assert await busy.code() == grpc.StatusCode.OK
            assert batcher.open_streams == 0
    finally:
        await runtime.stop(0)
        await batcher.close()
