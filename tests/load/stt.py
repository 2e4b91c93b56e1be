"""Load driver for the stt service: `python -m tests.load.stt --streams N --seconds S --provider P`.

Each stream speaks the librivox clips (real read speech with reference transcripts) one utterance
at a time, paced in real time in 32 ms chunks, with a 1 s gap between utterances that is NOT sent
(VAD-gated, so offsets jump), and a FINALIZE after each. Measured: final-result latency after
FINALIZE (p50/p99), WER against the references, and the service's CPU per second of audio
(rtf_cpu: 0.25 = one core handles four real-time streams), counted over the service's whole
process tree (its decoder worker processes included; "server" is the main process alone).

--provider deepgram-fake puts a fake Deepgram (tests/fakes/deepgram.py, deterministic "count"
recogniser so it costs no CPU) behind the service and, in the same run, drives the same number of
streams straight at the fake through the Deepgram SDK: added_latency_p50_ms is what our service
adds in front of the provider.
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from interview.v1 import common_pb2, stt_pb2, stt_pb2_grpc
from tests.load.harness import FIXTURES, LoadRun, Recording, arg_parser, emit, load_recordings, run_load
from tests.support.procs import ServiceProcess
from tests.support.wer import corpus_wer

BENCH = [
    ["--provider", "offline", "--streams", "1", "--seconds", "30"],
    ["--provider", "offline", "--streams", "3", "--seconds", "30"],
    ["--provider", "offline", "--streams", "4", "--seconds", "30"],
    ["--provider", "offline", "--streams", "6", "--seconds", "30"],
    ["--provider", "deepgram-fake", "--streams", "20", "--seconds", "30"],
]
GAP_S = 1.0


def clips() -> tuple[list[Recording], dict[str, str]]:
    refs = {}
    for line in (FIXTURES / "librivox" / "transcription").read_text().splitlines():
        m = re.match(r"<s> (.*) </s> \((.*)\)", line)
        if m:
            refs[f"librivox/{m.group(2)}.wav"] = m.group(1)
    return load_recordings(16000, tuple(refs)), refs


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by a process and its live descendants (the stt decoder workers)."""
    ticks, total, todo = os.sysconf("SC_CLK_TCK"), 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class GrpcStream:
    """One Recognize call driven from a queue, with FINALIZE -> answer latency measured."""

    def __init__(self, stub: stt_pb2_grpc.SttStub, provider: str, run: LoadRun):
        self.queue: asyncio.Queue[stt_pb2.RecognizeRequest | None] = asyncio.Queue()
        self.sent: dict[str, float] = {}
        self.answers: dict[str, str] = {}
        self.answered = asyncio.Event()
        self.run = run
        self.queue.put_nowait(stt_pb2.RecognizeRequest(config=stt_pb2.SttConfig(
            provider=provider, sample_rate_hz=16000, finalize_deadline_ms=10_000)))
        self.call = stub.Recognize(self._requests())
        self.reader = asyncio.create_task(self._read())

    async def _requests(self) -> AsyncIterator[stt_pb2.RecognizeRequest]:
        while (req := await self.queue.get()) is not None:
            yield req

    async def _read(self) -> None:
        async for resp in self.call:
            r = resp.result
            if resp.WhichOneof("msg") == "result" and r.finalize_id:
                self.run.hist("final_latency_ms").add((time.monotonic() - self.sent[r.finalize_id]) * 1000)
                if r.by_deadline:
                    self.run.count("by_deadline")
                self.answers[r.finalize_id] = r.text
                self.answered.set()

    async def audio(self, pcm: bytes, offset: int) -> None:
        await self.queue.put(stt_pb2.RecognizeRequest(audio=common_pb2.AudioChunk(pcm=pcm, offset_samples=offset)))

    async def finalize(self, fid: str) -> str:
        self.answered.clear()
        self.sent[fid] = time.monotonic()
        await self.queue.put(stt_pb2.RecognizeRequest(finalize=stt_pb2.Finalize(finalize_id=fid)))
        while fid not in self.answers:
            if self.reader.done():  # the call ended: surface its error instead of waiting forever
                self.reader.result()
                raise RuntimeError("stream ended before answering a FINALIZE")
            waiter = asyncio.create_task(self.answered.wait())
            await asyncio.wait({waiter, self.reader}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            self.answered.clear()
        return self.answers[fid]

    async def close(self) -> None:
        await self.queue.put(None)
        await self.reader


async def speak(i: int, run: LoadRun, send: Any, finalize: Any, refs: dict[str, str], pairs: list[tuple[str, str]]) -> None:
    """Utterances back to back until the run ends, each paced in real time, gaps not sent."""
    offset, n = 0, i
    while not run.done():
        rec = run.recording(n)
        async for off, pcm in run.paced(rec, chunk_ms=32, loop=False):
            await send(pcm, offset + off)
        run.count("audio_ms", int(rec.seconds * 1000))
        text = await finalize(f"{i}-{n}")
        pairs.append((refs[rec.name], text))
        run.count("utterances")
        offset += len(rec.samples) + int(GAP_S * rec.rate)
        n += 1
        await asyncio.sleep(GAP_S)


async def direct_sdk_stream(i: int, run: LoadRun, url: str, key: str) -> None:
    """Baseline: the same utterances straight to the fake through the Deepgram SDK."""
    from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

    env = DeepgramClientEnvironment(base="http://unused", production=url, agent=url, agent_rest="http://unused")
    client = AsyncDeepgramClient(api_key=key, environment=env)
    async with client.listen.v1.connect(model="nova-3", encoding="linear16", sample_rate="16000",
                                        interim_results="true", endpointing="false") as sock:
        answered: asyncio.Queue[float] = asyncio.Queue()

        async def receive() -> None:
            async for msg in sock:
                if getattr(msg, "type", None) == "Results" and msg.from_finalize:
                    answered.put_nowait(time.monotonic())

        receiver = asyncio.create_task(receive())

        async def send(pcm: bytes, _offset: int) -> None:
            await sock.send_media(pcm)

        async def finalize(_fid: str) -> str:
            t0 = time.monotonic()
            await sock.send_finalize()
            run.hist("direct_final_latency_ms").add((await answered.get() - t0) * 1000)
            return ""

        try:
            await speak(i, run, send, finalize, _NO_REFS, [])
        finally:
            receiver.cancel()


class _AnyRef(dict):  # the baseline's text is not scored
    def __missing__(self, key: str) -> str:
        return ""


_NO_REFS = _AnyRef()


async def main(argv: list[str]) -> dict[str, Any]:
    p = arg_parser("python -m tests.load.stt", __doc__.splitlines()[0])
    p.add_argument("--provider", choices=("offline", "deepgram-fake"), default="offline")
    args = p.parse_args(argv)
    recordings, refs = clips()
    fake = None
    env: dict[str, str] = {"STT_OFFLINE_MAX_DECODERS": str(max(16, args.streams)), "LOG_LEVEL": "WARNING"}
    if args.provider == "deepgram-fake":
        from tests.fakes.deepgram import FakeDeepgram

        fake = await FakeDeepgram(recognizer="count").start()
        env.update({"DEEPGRAM_API_KEY": fake.api_key, "STT_DEEPGRAM_URL": fake.url})
    proc = None if args.target else ServiceProcess("stt", env=env).start()
    target = args.target or proc.address  # type: ignore[union-attr]
    pairs: list[tuple[str, str]] = []
    provider = "offline" if args.provider == "offline" else "deepgram"
    try:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = stt_pb2_grpc.SttStub(channel)

            async def one(i: int, run: LoadRun) -> None:
                if fake is not None and i >= args.streams:
                    await direct_sdk_stream(i, run, fake.url, fake.api_key)
                    return
                stream = GrpcStream(stub, provider, run)
                try:
                    await speak(i, run, stream.audio, stream.finalize, refs, pairs)
                finally:
                    await stream.close()

            total = args.streams * (2 if fake is not None else 1)
            t0, cpu0 = time.monotonic(), tree_cpu_s(proc.pid) if proc else 0.0
            summary = await run_load(one, streams=total, seconds=args.seconds, recordings=recordings,
                                     pid=proc.pid if proc else None, progress=not args.quiet, ramp_s=1.0)
            if proc:
                summary["service_tree_cpu_pct"] = round(100 * (tree_cpu_s(proc.pid) - cpu0) / (time.monotonic() - t0), 1)
    finally:
        if proc:
            proc.stop()
        if fake:
            await fake.stop()
    summary["streams"] = args.streams
    summary["provider"] = args.provider
    audio_s = summary.get("audio_ms", 0) / 1000
    server = summary.get("server", {})
    cpu_pct = summary.get("service_tree_cpu_pct", server.get("cpu_pct"))
    if audio_s and cpu_pct is not None:
        summary["rtf_cpu"] = round(cpu_pct / 100 * summary["seconds"] / audio_s, 4)
    if args.provider == "offline":
        summary["wer"] = round(corpus_wer(pairs), 4) if pairs else None
    else:
        summary["direct_streams"] = args.streams
        ours, direct = summary.get("final_latency_ms", {}), summary.get("direct_final_latency_ms", {})
        if ours.get("count") and direct.get("count"):
            summary["added_latency_p50_ms"] = round(ours["p50"] - direct["p50"], 3)
            summary["added_latency_p99_ms"] = round(ours["p99"] - direct["p99"], 3)
    return summary


if __name__ == "__main__":
    emit(asyncio.run(main(sys.argv[1:])))
