"""Stt.Recognize: validates the stream's config, runs a RecognizeStream, turns errors into statuses."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import grpc

from interview.v1 import common_pb2, stt_pb2, stt_pb2_grpc
from services.common import languages, logs
from services.common.clock import Clock, RealClock
from services.common.errors import FailedPrecondition, InvalidArgument, ServiceError, invalid
from services.common.fallback import ProviderChain
from services.common.tasks import OwnedTask, WorkQueue
from services.stt.config import PROVIDERS, SttConfig
from services.stt.providers.base import SttProvider
from services.stt.stream import RecognizeStream

log = logging.getLogger("stt")

MIN_RATE, MAX_RATE = 8000, 48000
OUT_QUEUE = 64  # responses buffered per stream before the provider side waits for the caller


class SttServicer(stt_pb2_grpc.SttServicer):
    def __init__(self, cfg: SttConfig, chain: ProviderChain[SttProvider], clock: Clock | None = None):
        self.cfg = cfg
        self.chain = chain
        self.clock = clock or RealClock()
        self._closing: set[asyncio.Task[None]] = set()  # streams whose providers are being closed

    async def close(self) -> None:
        """Wait for streams still closing their sessions (the providers are closed by their owner)."""
        await asyncio.gather(*self._closing, return_exceptions=True)

    def _check_config(self, c: stt_pb2.SttConfig) -> str:
        """The provider the stream starts on, or a ServiceError saying what is wrong."""
        if c.provider and c.provider not in PROVIDERS.names:
            raise invalid("config.provider", f"unknown provider {c.provider!r}; use one of: "
                                             f"{', '.join(PROVIDERS.names)} (or empty for the default)")
        if not MIN_RATE <= c.sample_rate_hz <= MAX_RATE:
            raise invalid("config.sample_rate_hz", f"sample_rate_hz must be between {MIN_RATE} and {MAX_RATE} "
                                                   f"(16000 recommended); got {c.sample_rate_hz}")
        if c.finalize_deadline_ms < 0:
            raise invalid("config.finalize_deadline_ms", "finalize_deadline_ms must be 0 (default) or positive")
        provider = self.cfg.provider_for(c.provider)
        if provider not in self.chain.names:
            unmet = ", ".join(PROVIDERS.unmet(provider, self.cfg.provider, "STT")) or "its settings"
            raise FailedPrecondition(f"the {provider} provider is not configured on this server ({unmet} is unset); "
                                     f"use provider {' or '.join(repr(n) for n in self.chain.names)} or leave it empty",
                                     field="config.provider")
        if not c.provider and c.language and not languages.supported(self.chain.get(provider).languages, c.language):
            # no provider asked for: start on one that recognises the language, if the default does not
            provider = next((n for n in self.chain.names
                             if languages.supported(self.chain.get(n).languages, c.language)), provider)
        self.chain.get(provider).check(c)
        return provider

    async def Capabilities(self, request: common_pb2.CapabilitiesRequest,
                           context: grpc.aio.ServicerContext) -> common_pb2.CapabilitiesResponse:
        """Every provider in failover order: the configured ones with what they declare, the others
        (no API key) as unavailable."""
        out = common_pb2.CapabilitiesResponse()
        for name in PROVIDERS.names:
            if name in self.chain.names:
                out.providers.append(self.chain.get(name).capabilities())
            else:
                out.providers.append(common_pb2.ProviderCapabilities(provider=name, available=False))
        return out

    async def Recognize(self, request_iterator: AsyncIterator[stt_pb2.RecognizeRequest],
                        context: grpc.aio.ServicerContext) -> AsyncIterator[stt_pb2.RecognizeResponse]:
        out: WorkQueue[object] = WorkQueue(OUT_QUEUE)
        stream: RecognizeStream | None = None
        try:
            first = await anext(request_iterator, None)
            if first is None:
                return
            if first.WhichOneof("msg") != "config":
                raise InvalidArgument("the first message of a Recognize stream must be its config "
                                      f"(got {first.WhichOneof('msg') or 'an empty message'})", field="config")
            provider = self._check_config(first.config)
            stream_id = first.config.stream_id or uuid.uuid4().hex[:12]
            with logs.bind(stream_id=stream_id):
                deadline_ms = first.config.finalize_deadline_ms or self.cfg.finalize_deadline_ms
                stream = RecognizeStream(first.config, provider, self.chain, fallback=self.cfg.fallback,
                                         deadline_s=deadline_ms / 1000, clock=self.clock, out=out)
                await stream.start()
                async with OwnedTask(lambda: self._read(request_iterator, stream, out), "stt-reader"):
                    async for item in out:  # ends when the reader closes it
                        if isinstance(item, ServiceError):
                            raise item
                        yield item  # type: ignore[misc]
        except ServiceError as exc:
            log.info("stream rejected", extra={"code": exc.code.name, "reason": exc.message})
            await exc.abort(context)
        finally:
            if stream is not None:  # provider teardown (CloseStream, socket close) must not delay the caller
                task = asyncio.create_task(stream.close())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    async def _read(self, requests: AsyncIterator[stt_pb2.RecognizeRequest], stream: RecognizeStream,
                    out: WorkQueue[object]) -> None:
        """Feeds the stream; after the caller half-closes, waits for open FINALIZEs to be answered."""
        try:
            async for req in requests:
                kind = req.WhichOneof("msg")
                if kind == "audio":
                    await stream.audio(req.audio)
                elif kind == "finalize":
                    await stream.finalize(req.finalize)
                elif kind == "config":
                    raise InvalidArgument("config may only be sent once, as the stream's first message", field="config")
            await stream.drained()
        except ServiceError as exc:
            await out.put(exc)
        except Exception as exc:
            log.exception("stream failed")
            await out.put(ServiceError(f"internal error: {type(exc).__name__}"))
        finally:  # cancelled too: the consumer's loop must end
            out.close()
