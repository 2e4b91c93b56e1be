"""An in-process tts server (real servicer, real flite, real gRPC on loopback) per test."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
import numpy as np
import pytest

from interview.v1 import tts_pb2, tts_pb2_grpc
from services.common import config
from services.common.server import ServiceRuntime
from services.tts.config import TtsConfig
from services.tts.service import make_servicer
from tests.support.procs import free_port

StartServer = Callable[..., Awaitable[tts_pb2_grpc.TtsStub]]


@pytest.fixture
async def tts_server() -> AsyncIterator[StartServer]:
    """`await tts_server(TTS_PROVIDERS="offline", ...)` -> a stub of a fresh in-process server."""
    runtimes: list[ServiceRuntime] = []
    channels: list[grpc.aio.Channel] = []

    async def start(**environ: str) -> tts_pb2_grpc.TtsStub:
        env = {"TTS_PORT": str(free_port()), "TTS_PROVIDERS": "offline", **environ}  # 0 would be 50055: shared
        cfg = config.load(TtsConfig, "tts", env)
        runtime = ServiceRuntime("tts", cfg.server)
        servicer, providers = make_servicer(cfg)
        await servicer.offline.warm()  # as the service does before serving
        runtime.add(tts_pb2.DESCRIPTOR.services_by_name["Tts"].full_name,
                    tts_pb2_grpc.add_TtsServicer_to_server, servicer)
        for provider in providers:
            runtime.on_shutdown(provider.aclose)
        port = await runtime.start()
        runtimes.append(runtime)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        stub = tts_pb2_grpc.TtsStub(channel)
        stub.runtime = runtime  # type: ignore[attr-defined]  # tests look inside through these
        stub.servicer = servicer  # type: ignore[attr-defined]
        stub.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
        return stub

    yield start
    for channel in channels:
        await channel.close()
    for runtime in runtimes:
        await runtime.stop(0)


def request_stream(config_msg: tts_pb2.TtsConfig | None, texts: Iterable[str] = (), *, end: bool = True,
                   delay_s: float = 0.0) -> AsyncIterator[tts_pb2.SynthesizeRequest]:
    async def gen() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
        if config_msg is not None:
            yield tts_pb2.SynthesizeRequest(config=config_msg)
        for text in texts:
            if delay_s:
                await asyncio.sleep(delay_s)
            yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(text=text))
        if end:
            yield tts_pb2.SynthesizeRequest(end=tts_pb2.EndOfText())
    return gen()


async def collect(call: Any) -> list[tts_pb2.SynthesizeResponse]:
    return [r async for r in call]


def audio_of(responses: list[tts_pb2.SynthesizeResponse]) -> np.ndarray:
    pcm = b"".join(r.audio.pcm for r in responses if r.WhichOneof("msg") == "audio")
    return np.frombuffer(pcm, dtype="<i2")


def done_of(responses: list[tts_pb2.SynthesizeResponse]) -> tts_pb2.SynthesisDone:
    assert responses and responses[-1].WhichOneof("msg") == "done", responses[-1:] or "no responses"
    return responses[-1].done
