"""Stt.Recognize: validates the stream's config, runs a RecognizeStream, turns errors into statuses."""
from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator

import grpc

from interview.v1 import stt_pb2, stt_pb2_grpc
from services.common import logs
from services.common.clock import Clock, RealClock
from services.common.fallback import ProviderChain
from services.stt.config import PROVIDERS, SttConfig
from services.stt.deepgram import DeepgramProvider
from services.stt.offline import OfflineSession
from services.stt.stream import RecognizeStream, SessionFactory, StreamError
from services.stt.workers import DecoderPool

log = logging.getLogger("stt")

MIN_RATE, MAX_RATE = 8000, 48000
OUT_QUEUE = 64  # responses buffered per stream before the provider side waits for the caller
_DONE = object()


class SttServicer(stt_pb2_grpc.SttServicer):
    def __init__(self, cfg: SttConfig, clock: Clock | None = None):
        self.cfg = cfg
        self.clock = clock or RealClock()
        self.pool = DecoderPool(cfg.offline_max_decoders, cfg.offline_workers or os.cpu_count() or 1)
        self.deepgram = (DeepgramProvider(cfg.deepgram_api_key, cfg.deepgram_url, cfg.deepgram_model,
                                          cfg.deepgram_keepalive_s, cfg.backoff, cfg.max_replay_s)
                         if cfg.deepgram_api_key else None)
        providers: list[tuple[str, SessionFactory]] = []
        if self.deepgram is not None:
            providers.append(("deepgram", self._deepgram_session))
        providers.append(("offline", self._offline_session))
        self._closing: set[asyncio.Task[None]] = set()  # streams whose providers are being closed
        self.chain: ProviderChain[SessionFactory] = ProviderChain(providers, cooldown_s=cfg.breaker_cooldown_s,
                                                                  clock=self.clock)

    async def warm(self) -> None:
        """Start the decoder workers and load decoders now, so the first streams are not slow."""
        await self.pool.warm(self.cfg.offline_warm_decoders)

    async def close(self) -> None:
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.pool.close()

    def _offline_session(self, stream: RecognizeStream) -> OfflineSession:
        # Providers always produce interims, even when the caller wants none: a FINALIZE answered by
        # deadline carries the latest one.
        return OfflineSession(self.pool, stream.rate, stream.emitter("offline"), True, self.cfg.offline_interim_ms)

    def _deepgram_session(self, stream: RecognizeStream):  # type: ignore[no-untyped-def]
        assert self.deepgram is not None
        c = stream.config
        return self.deepgram.session(stream.rate, stream.emitter("deepgram"), language=c.language, model=c.model,
                                     interim=True, keywords=list(c.keywords))

    def _check_config(self, c: stt_pb2.SttConfig) -> str:
        """The provider the stream starts on, or StreamError saying what is wrong."""
        if c.provider and c.provider not in PROVIDERS:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                              f"unknown provider {c.provider!r}; use one of: {', '.join(PROVIDERS)} (or empty for the default)")
        if not MIN_RATE <= c.sample_rate_hz <= MAX_RATE:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                              f"sample_rate_hz must be between {MIN_RATE} and {MAX_RATE} (16000 recommended); "
                              f"got {c.sample_rate_hz}")
        if c.finalize_deadline_ms < 0:
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT, "finalize_deadline_ms must be 0 (default) or positive")
        provider = self.cfg.provider_for(c.provider)
        if provider == "deepgram" and self.deepgram is None:
            raise StreamError(grpc.StatusCode.FAILED_PRECONDITION,
                              "the deepgram provider is not configured on this server (DEEPGRAM_API_KEY is unset); "
                              "use provider 'offline' or leave it empty")
        if provider == "offline" and c.language and not c.language.lower().startswith("en"):
            raise StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                              f"the offline provider only recognises English; got language {c.language!r}")
        return provider

    async def Recognize(self, request_iterator: AsyncIterator[stt_pb2.RecognizeRequest],
                        context: grpc.aio.ServicerContext) -> AsyncIterator[stt_pb2.RecognizeResponse]:
        out: asyncio.Queue[object] = asyncio.Queue(OUT_QUEUE)
        stream: RecognizeStream | None = None
        try:
            first = await anext(request_iterator, None)
            if first is None:
                return
            if first.WhichOneof("msg") != "config":
                raise StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                                  "the first message of a Recognize stream must be its config "
                                  f"(got {first.WhichOneof('msg') or 'an empty message'})")
            provider = self._check_config(first.config)
            stream_id = first.config.stream_id or uuid.uuid4().hex[:12]
            with logs.bind(stream_id=stream_id):
                deadline_ms = first.config.finalize_deadline_ms or self.cfg.finalize_deadline_ms
                stream = RecognizeStream(first.config, provider, self.chain, fallback=self.cfg.fallback,
                                         deadline_s=deadline_ms / 1000, clock=self.clock, out=out)
                await stream.start()
                reader = asyncio.create_task(self._read(request_iterator, stream, out))
                try:
                    while True:
                        item = await out.get()
                        if item is _DONE:
                            break
                        if isinstance(item, StreamError):
                            raise item
                        yield item  # type: ignore[misc]
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
        except StreamError as exc:
            log.info("stream rejected", extra={"code": exc.code.name, "reason": exc.message})
            await context.abort(exc.code, exc.message)
        finally:
            if stream is not None:  # provider teardown (CloseStream, socket close) must not delay the caller
                task = asyncio.create_task(stream.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def _read(self, requests: AsyncIterator[stt_pb2.RecognizeRequest], stream: RecognizeStream,
                    out: asyncio.Queue[object]) -> None:
        """Feeds the stream; after the caller half-closes, waits for open FINALIZEs to be answered."""
        try:
            async for req in requests:
                kind = req.WhichOneof("msg")
                if kind == "audio":
                    await stream.audio(req.audio)
                elif kind == "finalize":
                    await stream.finalize(req.finalize)
                elif kind == "config":
                    raise StreamError(grpc.StatusCode.INVALID_ARGUMENT,
                                      "config may only be sent once, as the stream's first message")
            await stream.drained()
            await out.put(_DONE)
        except StreamError as exc:
            await out.put(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("stream failed")
            await out.put(StreamError(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}"))
