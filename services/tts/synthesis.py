"""One Synthesize stream: text deltas in, speech chunks out, through the provider chain.

Two tasks per stream, both owned here: the reader (requests -> segmenter -> a bounded queue of
pieces) and the speaker (this async generator: piece -> normaliser -> provider -> fixed-size
chunks). The reader keeps taking text while a piece is being spoken, so audio starts with the
first piece and the LLM is never waited for. When a provider fails mid-utterance the chain moves
to the next one (a ProviderEvent says so) and the interrupted piece is spoken again from its
start, so the candidate keeps hearing the interviewer. Cancelling the generator (the gRPC call
was cancelled) cancels the reader, kills an in-flight synthesis and cancels the provider's
context: nothing more is produced or sent.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from interview.v1 import common_pb2, tts_pb2
from services.common import telemetry
from services.common.audio import samples_per_ms
from services.common.fallback import Failover, ProviderChain
from services.tts.normalize import normalize
from services.common.errors import (InvalidArgument, NoProviderAnswered, ProviderError, ResourceExhausted)
from services.common.tasks import OwnedTask, WorkQueue
from services.tts.providers.base import ProviderStream, TtsProvider as Provider, Utterance
from services.tts.segmenter import Segmenter

log = logging.getLogger("tts.synthesis")
PIECE_QUEUE = 16  # pieces waiting to be spoken; beyond it the reader stops reading (back-pressure)


@dataclass(frozen=True)
class Limits:
    chunk_ms: int = 32
    max_text_chars: int = 20000
    first_piece_words: int = 3
    max_piece_words: int = 40


@dataclass
class _Piece:
    text: str
    trace: common_pb2.TraceContext


class Rechunker:
    """Provider audio of any length -> chunks of exactly `size` samples (the last one shorter)."""

    def __init__(self, size: int):
        self.size = size
        self._buf = np.zeros(0, dtype=np.int16)

    def push(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        self._buf = np.concatenate([self._buf, samples.astype(np.int16, copy=False)])
        n = len(self._buf) // self.size
        for i in range(n):
            yield self._buf[i * self.size:(i + 1) * self.size]
        self._buf = self._buf[n * self.size:]

    def rest(self) -> Iterator[np.ndarray]:
        if len(self._buf):
            yield self._buf
        self._buf = np.zeros(0, dtype=np.int16)


class Synthesis:
    def __init__(self, chain: ProviderChain[Provider], utterance: Utterance, limits: Limits,
                 start: str | None = None):
        self.chain = chain
        self.u = utterance
        self.limits = limits
        self.start = start
        self.offset = 0
        self.segments = 0
        self.spoken: list[str] = []
        self.walk: Failover[Provider] = Failover(chain, start)
        self._started = False
        self._stream: ProviderStream | None = None

    async def run(self, requests: AsyncIterator[tts_pb2.SynthesizeRequest]) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        pieces: WorkQueue[_Piece | Exception] = WorkQueue(PIECE_QUEUE)
        reader = OwnedTask(lambda: self._read(requests, pieces), "tts-reader")
        reader.start()
        try:
            async for item in pieces:
                if isinstance(item, Exception):
                    raise item
                text = normalize(item.text)
                if not text:
                    continue
                if self._started:
                    async for response in self._speak(text, item.trace):
                        yield response
                    continue
                self._started = True  # chosen at the first piece: a half-open breaker's trial
                for event in self.walk.begin():  # is only taken by a stream that speaks
                    yield _provider_event(event)
                # The first piece is the one on the turn's critical path: its span ends at its first audio.
                span: Any = telemetry.start_child(item.trace, "tts.first_piece", chars=len(text))
                try:
                    async for response in self._speak(text, item.trace):
                        if span is not None and response.WhichOneof("msg") == "audio":
                            span.set_attribute("provider", self.walk.name or "")
                            span.end()
                            span = None
                        yield response
                finally:
                    if span is not None:  # failed or cancelled before any audio
                        span.set_attribute("cancelled", True)
                        span.end()
            if self._stream is not None:
                await self._stream.finish()
            provider = self.walk.name or self.start or self.chain.names[0]
            yield tts_pb2.SynthesizeResponse(done=tts_pb2.SynthesisDone(
                total_samples=self.offset, segments=self.segments, provider=provider,
                spoken_text=" ".join(self.spoken)))
        finally:
            await reader.stop()
            if self._stream is not None:
                stream, self._stream = self._stream, None
                await stream.aclose()

    async def _read(self, requests: AsyncIterator[tts_pb2.SynthesizeRequest],
                    out: WorkQueue[_Piece | Exception]) -> None:
        seg = Segmenter(self.limits.first_piece_words, self.limits.max_piece_words)
        trace = common_pb2.TraceContext()
        total = 0
        try:
            async for req in requests:
                kind = req.WhichOneof("msg")
                if kind == "text":
                    total += len(req.text.text)
                    if total > self.limits.max_text_chars:
                        raise ResourceExhausted(
                                       f"text too long: this stream sent {total} characters, the limit is "
                                       f"{self.limits.max_text_chars}; split the response into several streams")
                    if req.text.HasField("trace"):
                        trace = req.text.trace
                    for piece in seg.push(req.text.text):
                        await out.put(_Piece(piece, trace))
                elif kind in ("flush", "end"):
                    for piece in seg.flush():
                        await out.put(_Piece(piece, trace))
                    if kind == "end":
                        break
                elif kind == "config":
                    raise InvalidArgument("config may only be sent once, as the stream's first message",
                                          field="config")
                else:
                    raise InvalidArgument("empty SynthesizeRequest: set one of text, flush or end")
            else:  # the caller half-closed without `end`: speak what is left all the same
                for piece in seg.flush():
                    await out.put(_Piece(piece, trace))
            out.close()
        except Exception as exc:  # the speaker raises it in order, ending the stream
            await out.put(exc)
            out.close()

    async def _speak(self, text: str, trace: common_pb2.TraceContext) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        index = self.segments
        size = samples_per_ms(self.u.rate, self.limits.chunk_ms)
        while True:
            name, provider = self.walk.name, self.walk.provider
            assert provider is not None
            if self._stream is None:
                self._stream = provider.open(self.u)
            chunker, tagged = Rechunker(size), False
            try:
                async for samples in self._stream.synthesize(text):
                    for pcm in chunker.push(samples):
                        yield self._chunk(pcm, index, "" if tagged else text, trace)
                        tagged = True
                for pcm in chunker.rest():
                    yield self._chunk(pcm, index, "" if tagged else text, trace)
                    tagged = True
            except ProviderError as exc:
                stream, self._stream = self._stream, None
                await stream.aclose()
                events = self.walk.fail(str(exc))
                if self.walk.provider is None:
                    raise NoProviderAnswered(
                        f"speech synthesis failed on every provider (last: {name}: {exc})") from exc
                for event in events:
                    yield _provider_event(event)
                continue
            self.walk.succeed()
            self.segments += 1
            self.spoken.append(text)
            return

    def _chunk(self, pcm: np.ndarray, index: int, text: str, trace: common_pb2.TraceContext) -> tts_pb2.SynthesizeResponse:
        chunk = tts_pb2.SpeechChunk(pcm=pcm.astype("<i2").tobytes(), sample_rate_hz=self.u.rate,
                                    offset_samples=self.offset, text=text, segment_index=index,
                                    generation_id=self.u.generation_id, trace=trace)
        self.offset += len(pcm)
        return tts_pb2.SynthesizeResponse(audio=chunk)


def _provider_event(event: common_pb2.ProviderEvent) -> tts_pb2.SynthesizeResponse:
    event.reason = event.reason[:300]
    return tts_pb2.SynthesizeResponse(provider_event=event)
