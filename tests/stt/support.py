"""Helpers for STT tests: an in-process stt server (real gRPC on loopback) and request scripts."""
from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from interview.v1 import common_pb2, stt_pb2, stt_pb2_grpc
from services.common import config
from services.common.audio import read_wav
from services.common.clock import Clock
from services.common.server import ServiceRuntime
from services.stt.config import SttConfig
from services.stt.providers.offline.workers import DecoderPool
from services.stt.service import make_servicer
from services.stt.servicer import SttServicer
from tests.support.procs import free_port

SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
LIBRIVOX = SPEECH / "librivox"


def librivox() -> list[tuple[str, str]]:
    """(wav path, reference transcript) of the librivox clips."""
    out = []
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line)
        if m:
            out.append((str(LIBRIVOX / f"{m.group(2)}.wav"), m.group(1)))
    return out


def speech(name: str, rate: int = 16000) -> np.ndarray:
    return read_wav(SPEECH / name, rate)[0]


@dataclass
class Stt:
    stub: stt_pb2_grpc.SttStub
    servicer: SttServicer
    address: str
    pool: DecoderPool  # the offline provider's decoder workers


@contextlib.asynccontextmanager
async def stt_server(env: dict[str, str] | None = None, clock: Clock | None = None) -> AsyncIterator[Stt]:
    cfg = config.load(SttConfig, "stt", {"STT_PORT": str(free_port()), "STT_OFFLINE_WARM_DECODERS": "0",
                                      "STT_FINALIZE_DEADLINE_MS": "30000", **(env or {})})
    runtime = ServiceRuntime("stt", cfg.server)
    servicer, providers = make_servicer(cfg, clock=clock)
    runtime.add(stt_pb2.DESCRIPTOR.services_by_name["Stt"].full_name, stt_pb2_grpc.add_SttServicer_to_server, servicer)
    runtime.on_shutdown(servicer.close)
    for provider in providers:
        runtime.on_shutdown(provider.close)
    port = await runtime.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Stt(stt_pb2_grpc.SttStub(channel), servicer, f"127.0.0.1:{port}", servicer.chain.get("offline").pool)
    finally:
        await channel.close()
        await runtime.stop(0.5)


def cfg(rate: int = 16000, **kw: object) -> stt_pb2.RecognizeRequest:
    return stt_pb2.RecognizeRequest(config=stt_pb2.SttConfig(sample_rate_hz=rate, **kw))  # type: ignore[arg-type]


def audio(samples: np.ndarray, offset: int = 0, chunk: int = 512) -> list[stt_pb2.RecognizeRequest]:
    """32 ms chunks (at 16 kHz) placed at `offset` on the caller's timeline."""
    return [stt_pb2.RecognizeRequest(audio=common_pb2.AudioChunk(pcm=samples[i:i + chunk].astype("<i2").tobytes(),
                                                                 offset_samples=offset + i))
            for i in range(0, len(samples), chunk)]


def fin(finalize_id: str) -> stt_pb2.RecognizeRequest:
    return stt_pb2.RecognizeRequest(finalize=stt_pb2.Finalize(finalize_id=finalize_id))


async def run(stub: stt_pb2_grpc.SttStub, requests: Iterable[stt_pb2.RecognizeRequest],
              timeout: float = 60) -> list[stt_pb2.RecognizeResponse]:
    """Send the script as fast as possible (so deadlines are long here), half-close, collect every response (raises grpc.aio.AioRpcError on a status)."""
    async def gen() -> AsyncIterator[stt_pb2.RecognizeRequest]:
        for r in requests:
            yield r

    return [r async for r in stub.Recognize(gen(), timeout=timeout)]


def answers(responses: list[stt_pb2.RecognizeResponse]) -> dict[str, stt_pb2.SttResult]:
    """Final results that answer a FINALIZE, by finalize_id."""
    return {r.result.finalize_id: r.result for r in responses
            if r.WhichOneof("msg") == "result" and r.result.is_final and r.result.finalize_id}


def events(responses: list[stt_pb2.RecognizeResponse]) -> list[common_pb2.ProviderEvent]:
    return [r.provider_event for r in responses if r.WhichOneof("msg") == "provider_event"]


async def status_of(stt: Stt, requests: Iterable[stt_pb2.RecognizeRequest], timeout: float = 60) -> grpc.RpcError:
    """The status a stream ends with, seen by a sync client in a thread.

    grpc.aio clients report INTERNAL ("Failed execute_batch") instead of the server's status when the
    server ends a stream while the client is still writing (grpc/grpc#36066); the sync client reports
    the real status, which is what these tests check.
    """
    def call() -> grpc.RpcError:
        with grpc.insecure_channel(stt.address) as channel:
            try:
                for _ in stt_pb2_grpc.SttStub(channel).Recognize(iter(list(requests)), timeout=timeout):
                    pass
            except grpc.RpcError as exc:
                return exc
        raise AssertionError("the stream ended without an error status")

    return await asyncio.get_running_loop().run_in_executor(None, call)
