"""`python -m services.stt transcribe FILE.wav`: stream a recording through Stt.Recognize.

Same code path as production: the file is resampled to 16 kHz, cut into 32 ms chunks and streamed
over gRPC to a running service (--target) or to one started in this process with the STT_*
environment. A FINALIZE goes at the end, and with --pause-ms also after every pause that long
(an energy-based pause detector, for debugging without the VAD service).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator

import grpc
import numpy as np

from interview.v1 import common_pb2, stt_pb2, stt_pb2_grpc
from services.common import config
from services.common.audio import read_wav
from services.common.server import ServerSettings, ServiceRuntime
from services.stt.config import PROVIDERS, SttConfig
from services.stt.service import make_servicer, serve

RATE = 16000
SILENCE_DBFS = -40.0


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a PCM16 WAV file (any sample rate, mono or stereo)")
    p.add_argument("--provider", choices=PROVIDERS.names, default="", help="default: the server's default")
    p.add_argument("--json", action="store_true", help="print one JSON object per result, with offsets and words")
    p.add_argument("--interim", action="store_true", help="also print interim results")
    p.add_argument("--pause-ms", type=int, default=0, help="also FINALIZE after pauses this long (0 = only at the end)")
    p.add_argument("--chunk-ms", type=float, default=32.0, help="audio chunk size")
    p.add_argument("--deadline-ms", type=int, default=60_000,
                   help="FINALIZE deadline; long by default since the file is sent faster than real time")
    p.add_argument("--target", default="", help="host:port of a running stt service; default: start one in-process")


def pauses(samples: np.ndarray, chunk: int, pause_ms: int) -> set[int]:
    """Indices of chunks after which `pause_ms` of quiet audio (below -40 dBFS) has just passed."""
    if pause_ms <= 0:
        return set()
    need = max(1, int(pause_ms * RATE / 1000 / chunk))
    out, quiet, spoke = set(), 0, False
    for i, start in enumerate(range(0, len(samples), chunk)):
        part = samples[start:start + chunk].astype(np.float64)
        dbfs = 20 * np.log10(max(1e-9, np.sqrt(np.mean(part ** 2)) / 32768)) if len(part) else -120.0
        if dbfs > SILENCE_DBFS:
            quiet, spoke = 0, True
        else:
            quiet += 1
            if spoke and quiet == need:
                out.add(i)
                spoke = False
    return out


async def _requests(samples: np.ndarray, args: argparse.Namespace) -> AsyncIterator[stt_pb2.RecognizeRequest]:
    yield stt_pb2.RecognizeRequest(config=stt_pb2.SttConfig(provider=args.provider, sample_rate_hz=RATE,
                                                            interim_results=args.interim, stream_id="cli",
                                                            finalize_deadline_ms=args.deadline_ms))
    chunk = max(1, int(RATE * args.chunk_ms / 1000))
    cut = pauses(samples, chunk, args.pause_ms)
    n = 0
    for i, start in enumerate(range(0, len(samples), chunk)):
        yield stt_pb2.RecognizeRequest(audio=common_pb2.AudioChunk(pcm=samples[start:start + chunk].tobytes(),
                                                                   offset_samples=start))
        if i in cut:
            n += 1
            yield stt_pb2.RecognizeRequest(finalize=stt_pb2.Finalize(finalize_id=f"pause-{n}"))
    yield stt_pb2.RecognizeRequest(finalize=stt_pb2.Finalize(finalize_id="end"))


def _print(r: stt_pb2.SttResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps({
            "final": r.is_final, "finalize_id": r.finalize_id, "text": r.text, "provider": r.provider,
            "confidence": round(r.confidence, 3), "start_s": r.start_offset_samples / RATE,
            "end_s": r.end_offset_samples / RATE, "by_deadline": r.by_deadline,
            "words": [{"text": w.text, "start_s": w.start_offset_samples / RATE, "end_s": w.end_offset_samples / RATE,
                       "confidence": round(w.confidence, 3)} for w in r.words]}), flush=True)
    elif r.finalize_id and r.text:
        print(r.text, flush=True)
    elif not r.is_final:
        print(f"… {r.text}", file=sys.stderr, flush=True)


async def _transcribe(args: argparse.Namespace) -> int:
    samples, _ = read_wav(args.file, RATE)
    runtime: ServiceRuntime | None = None
    target = args.target
    if not target:
        cfg = config.load(SttConfig, "stt")
        settings = ServerSettings(host="127.0.0.1", port=0)
        runtime = ServiceRuntime("stt", settings)
        runtime.port = 0  # any free port
        await serve(*make_servicer(cfg), runtime)
        target = f"127.0.0.1:{await runtime.start()}"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            async for resp in stt_pb2_grpc.SttStub(channel).Recognize(_requests(samples, args)):
                kind = resp.WhichOneof("msg")
                if kind == "result":
                    _print(resp.result, args.json)
                elif kind == "provider_event":
                    print(f"provider event: {common_pb2.ProviderEvent.Kind.Name(resp.provider_event.kind)} "
                          f"{resp.provider_event.provider} {resp.provider_event.reason}", file=sys.stderr)
        return 0
    except grpc.aio.AioRpcError as exc:
        print(f"stt: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    finally:
        if runtime is not None:
            await runtime.stop(0.5)


def run(args: argparse.Namespace) -> int:
    from services.common import logs

    logs.setup("stt", "WARNING")
    return asyncio.run(_transcribe(args))
