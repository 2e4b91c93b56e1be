"""Offline provider: pocketsphinx (bundled en-us model), streamed utterance by utterance.

pocketsphinx's Python API cannot share one loaded model between decoders and every decoder holds
its own copy (~90 MB, ~0.5 s to load), so decoders are pooled per process: a stream borrows one
for an utterance (first audio after a FINALIZE .. the next FINALIZE) and gives it back, so the
model is loaded once per decoder slot, never per stream. Decoding runs in a small thread pool, off
the event loop. `process_raw` holds the GIL (measured: two threads decoding take twice the wall
time of one, CPU = wall), so one process decodes on one core: scale offline STT with processes
(one per core behind the round_robin channel), not threads.

Feature state (cepstral mean normalisation) is reset to a fixed prior at every utterance start, so a
result never depends on what the stream, or another stream using the same decoder, said before. The prior matters: pocketsphinx's default (40,3,-1,0,...)
costs ~0.11 WER on the librivox clips when streaming; this one (the mean over 60 s of 16 kHz
English lecture speech, tests/fixtures/speech/lecture_60s_16k.wav) brings streaming within 0.02 of
whole-file decoding.
"""
from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import grpc
import numpy as np

from services.common.audio import Resampler, pcm_to_int16
from services.stt.provider import Audio, Emit, FinalizeMark, LogItem, ProviderFailure, ProviderResult, WordResult
from services.stt.segments import SegmentMap

log = logging.getLogger("stt.offline")

DECODER_RATE = 16000
FRAMES_PER_S = 100  # pocketsphinx's default frame rate
CMN_PRIOR = "51.53,13.29,-4.68,-7.27,-6.71,-10.05,-16.71,-0.66,-1.81,-0.17,0.00,3.24,-7.02"
_ALT = re.compile(r"\(\d+\)$")


def new_decoder() -> Any:
    from pocketsphinx import Decoder

    return Decoder(loglevel="FATAL", cmninit=CMN_PRIOR)


def words_of(decoder: Any) -> list[tuple[str, float, float, float]]:
    """(word, start_s, end_s, probability) of the best path, fillers and silences left out."""
    out = []
    for seg in decoder.seg() or ():  # None when nothing was recognised
        word = seg.word
        if word.startswith(("<", "[")) or word == "<sil>":
            continue
        out.append((_ALT.sub("", word), seg.start_frame / FRAMES_PER_S, (seg.end_frame + 1) / FRAMES_PER_S, float(seg.prob)))
    return out


def decode_whole(samples: np.ndarray) -> str:
    """Decode a whole 16 kHz signal in one call (batch normalisation): the offline reference."""
    decoder = new_decoder()
    decoder.start_utt()
    decoder.process_raw(samples.astype("<i2").tobytes(), False, True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp else ""


class DecoderPool:
    """At most `max_decoders` decoders per process, created on demand and reused."""

    def __init__(self, max_decoders: int, executor: Executor, factory: Callable[[], Any] = new_decoder):
        self.max_decoders = max_decoders
        self.executor = executor
        self._factory = factory
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(max_decoders)
        self.created = 0

    @property
    def in_use(self) -> int:
        return self.created - len(self._idle)

    async def warm(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(min(n, self.max_decoders) - self.created):
            self._idle.append(await loop.run_in_executor(self.executor, self._factory))
            self.created += 1

    async def acquire(self) -> Any:
        """A decoder for one utterance; waits (back-pressure) when all are busy."""
        await self._slots.acquire()
        if self._idle:
            return self._idle.pop()
        try:
            decoder = await asyncio.get_running_loop().run_in_executor(self.executor, self._factory)
        except BaseException:
            self._slots.release()
            raise
        self.created += 1
        return decoder

    def release(self, decoder: Any) -> None:
        self._idle.append(decoder)
        self._slots.release()

    def discard(self, decoder: Any) -> None:
        """Give back the slot of a decoder in an unknown state, without reusing it."""
        self.created -= 1
        self._slots.release()


class OfflineSession:
    """One stream on pocketsphinx: audio fed as it arrives, partials as interims, FINALIZE ends the utterance."""

    name = "offline"

    def __init__(self, pool: DecoderPool, rate: int, emit: Emit, interim: bool, interim_ms: int):
        self.pool = pool
        self.rate = rate
        self._emit = emit
        self._interim_samples = int(DECODER_RATE * interim_ms / 1000) if interim else 0
        self._queue: asyncio.Queue[LogItem | None] = asyncio.Queue(maxsize=32)
        self._task: asyncio.Task[None] | None = None
        self._decoder: Any = None
        self._map = SegmentMap(rate)
        self._resampler: Resampler | None = None
        self._since_interim = 0
        self._last_interim = ""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._worker(), name="stt-offline")

    async def send_audio(self, audio: Audio) -> None:
        await self._queue.put(audio)

    async def finalize(self) -> None:
        await self._queue.put(FinalizeMark())

    def unfinished(self) -> list[LogItem]:
        return []

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._decoder is not None:  # mid-utterance: the decoder is reusable after a fresh start_utt
            decoder, self._decoder = self._decoder, None
            try:
                await asyncio.get_running_loop().run_in_executor(self.pool.executor, decoder.end_utt)
            except Exception:
                log.warning("could not end an abandoned utterance; dropping the decoder")
                self.pool.discard(decoder)
                return
            self.pool.release(decoder)

    async def _worker(self) -> None:
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, Audio):
                    await self._audio(item)
                elif isinstance(item, FinalizeMark):
                    await self._finalize()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("offline decoder failed")
            await self._emit(ProviderFailure(grpc.StatusCode.INTERNAL, f"offline recogniser failed: {exc}"))

    def _run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self.pool.executor, fn, *args)

    async def _audio(self, audio: Audio) -> None:
        if self._decoder is None:
            self._decoder = await self.pool.acquire()
            self._map = SegmentMap(self.rate)
            self._resampler = Resampler(self.rate, DECODER_RATE)
            self._since_interim = 0
            self._last_interim = ""
            await self._run(self._begin, self._decoder)
        samples = pcm_to_int16(audio.pcm)
        self._map.append(audio.offset, len(samples))
        partial = await self._run(self._feed, samples)
        if partial is not None and partial != self._last_interim:
            self._last_interim = partial
            await self._emit(ProviderResult(partial, False, self._map.to_caller(0.0),
                                            audio.offset + len(samples)))

    @staticmethod
    def _begin(decoder: Any) -> None:
        # reinit_feat resets all feature state (CMN mean and its frame count) to the configured prior,
        # in 0.1 ms; without a reset, the second utterance already decodes differently.
        decoder.reinit_feat()
        decoder.start_utt()

    def _feed(self, samples: np.ndarray) -> str | None:
        """In a decoder thread: resample, decode, and return a partial hypothesis when one is due."""
        assert self._resampler is not None
        pcm16k = self._resampler.process(samples)
        if len(pcm16k):
            self._decoder.process_raw(pcm16k.tobytes(), False, False)
        self._since_interim += len(pcm16k)
        if self._interim_samples and self._since_interim >= self._interim_samples:
            self._since_interim = 0
            hyp = self._decoder.hyp()
            return hyp.hypstr if hyp else ""
        return None

    def _end(self) -> tuple[str, list[tuple[str, float, float, float]]]:
        assert self._resampler is not None
        tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True)
        if len(tail):
            self._decoder.process_raw(tail.tobytes(), False, False)
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return (hyp.hypstr if hyp else ""), words_of(self._decoder)

    async def _finalize(self) -> None:
        if self._decoder is None:
            end = self._map.to_caller(self._map.provider_s)
            await self._emit(ProviderResult("", True, end, end, from_finalize=True))
            return
        decoder = self._decoder
        try:
            text, words = await self._run(self._end)
        finally:
            self._decoder = None
            self.pool.release(decoder)
        m = self._map
        word_results = [WordResult(w, m.to_caller(s), m.to_caller(e), p) for w, s, e, p in words]
        confidence = float(np.mean([w.confidence for w in word_results])) if word_results else 0.0
        await self._emit(ProviderResult(text, True, m.to_caller(0.0), m.to_caller(m.provider_s), confidence,
                                        from_finalize=True, words=word_results))
