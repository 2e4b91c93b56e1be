"""One stream's session on pocketsphinx (bundled en-us model), streamed utterance by utterance.

The decoding itself happens in worker processes (workers.py, worker.py, decoder.py beside it), one per
core: pocketsphinx holds the GIL, so threads would share one core. A stream borrows a decoder for
one utterance (first audio after a FINALIZE .. the next FINALIZE) and gives it back, so it holds
nothing between utterances. Audio goes to the worker in batches: one call in flight per stream,
and whatever arrived meanwhile goes in the next call (one 32 ms chunk per call at real-time pace, more
when a worker is behind), with the FINALIZE riding on the last batch.

A FINALIZE at a short pause (turn-taking) cuts a turn into pieces: when the next utterance's audio
starts exactly where the previous one ended, it is the same speech going on, and its decoding
starts from the feature normalisation (CMN) the previous piece ended with (decoder.py).
"""
from __future__ import annotations

import asyncio
import logging

import grpc
import numpy as np

from services.stt.providers.offline.decoder import DECODER_RATE
from services.common.tasks import cancel_and_wait
from services.stt.providers.base import (Audio, Emit, FinalizeMark, LogItem, ProviderFailure, ProviderResult, Session,
                                         WordResult, is_filler)
from services.stt.segments import SegmentMap
from services.stt.providers.offline.workers import DecoderPool, Lease, WorkerGone

log = logging.getLogger("stt.offline")


class OfflineSession(Session):
    """One stream on pocketsphinx: audio fed as it arrives, partials as interims, FINALIZE ends the utterance."""

    name = "offline"

    def __init__(self, pool: DecoderPool, rate: int, emit: Emit, interim: bool, interim_ms: int):
        self.pool = pool
        self.rate = rate
        self._emit = emit
        # interims are counted in decoder (16 kHz) samples, inside the worker
        self._interim_samples = int(DECODER_RATE * interim_ms / 1000) if interim else 0
        self._queue: asyncio.Queue[LogItem | None] = asyncio.Queue(maxsize=32)
        self._task: asyncio.Task[None] | None = None
        self._lease: Lease | None = None
        self._begun = False
        self._map = SegmentMap(rate)
        self._last_interim = ""
        self._audio_end: int | None = None  # caller offset just after the audio sent so far
        self._carry: tuple[int, str] | None = None  # (end offset, CMN) of the last finished utterance

    async def start(self) -> None:
        self._task = asyncio.create_task(self._worker(), name="stt-offline")

    async def send_audio(self, audio: Audio) -> None:
        await self._queue.put(audio)

    async def finalize(self) -> None:
        await self._queue.put(FinalizeMark())

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
        if self._lease is not None:  # mid-utterance: the decoder is reusable once the utterance is ended
            lease, self._lease = self._lease, None
            try:
                await lease.call("abandon")  # a no-op in the worker if the utterance never began or already ended
            except Exception:
                log.warning("could not end an abandoned utterance; dropping the decoder")
                self.pool.discard(lease)
                return
            self.pool.release(lease)

    async def _worker(self) -> None:
        try:
            while True:
                batch = [await self._queue.get()]
                while not isinstance(batch[-1], FinalizeMark) and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await self._process([a for a in batch if isinstance(a, Audio)], isinstance(batch[-1], FinalizeMark))
        except asyncio.CancelledError:
            raise
        except WorkerGone as exc:
            log.error("offline decoder worker exited mid-utterance", extra={"reason": str(exc)})
            self._lost()
            await self._emit(ProviderFailure(grpc.StatusCode.UNAVAILABLE,
                                             "the offline recogniser's worker process exited; this utterance is lost, "
                                             "a new stream will get a restarted worker"))
        except Exception as exc:
            log.exception("offline decoder failed")
            self._lost()
            await self._emit(ProviderFailure(grpc.StatusCode.INTERNAL, f"offline recogniser failed: {exc}"))

    def _lost(self) -> None:
        if self._lease is not None:
            self.pool.discard(self._lease)
            self._lease = None

    async def _process(self, audio: list[Audio], end: bool) -> None:
        if audio and self._lease is None:
            self._lease = await self.pool.acquire()
            self._begun = False
            self._map = SegmentMap(self.rate)
            self._last_interim = ""
        if self._lease is None:  # FINALIZE with no audio since the last one
            stop = self._map.to_caller(self._map.provider_s)
            await self._emit(ProviderResult("", True, stop, stop, from_finalize=True))
            return
        for a in audio:
            self._map.append(a.offset, len(a.pcm) // 2)
        begin = None
        if not self._begun:
            cmn = self._carry[1] if self._carry is not None and audio[0].offset == self._carry[0] else None
            begin = (self.rate, self._interim_samples, cmn)
        self._begun = True
        if audio:
            self._audio_end = audio[-1].offset + len(audio[-1].pcm) // 2
        partial, final = await self._lease.call("utt", begin, b"".join(a.pcm for a in audio), end)
        if final is not None:
            lease, self._lease = self._lease, None
            self.pool.release(lease)
            text, words, cmn = final
            self._carry = (self._audio_end, cmn) if self._audio_end is not None else None
            await self._final(text, words)
        elif partial is not None and partial != self._last_interim:
            self._last_interim = partial
            last = audio[-1]
            await self._emit(ProviderResult(partial, False, self._map.to_caller(0.0), last.offset + len(last.pcm) // 2))

    async def _final(self, text: str, words: list[tuple[str, float, float, float]]) -> None:
        m = self._map
        word_results = [WordResult(w, m.to_caller(s), m.to_caller(e), p, filler=is_filler(w)) for w, s, e, p in words]
        confidence = float(np.mean([w.confidence for w in word_results])) if word_results else 0.0
        await self._emit(ProviderResult(text, True, m.to_caller(0.0), m.to_caller(m.provider_s), confidence,
                                        from_finalize=True, words=word_results))
