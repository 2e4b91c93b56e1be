"""Video.Analyze: validates the first message, runs a StreamSession, and streams its responses."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import Executor

import grpc

from interview.v1 import video_pb2, video_pb2_grpc
from services.common import logs
from services.common.fallback import ProviderChain
from services.video.providers.base import Provider
from services.video.session import Limits, StreamSession, counters

log = logging.getLogger("video")


class LocalContext:
    """Stands in for the gRPC context when a stream runs in-process (CLI, tests, benchmarks)."""

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise ValueError(details)


class VideoServicer(video_pb2_grpc.VideoServicer):
    def __init__(self, chain: ProviderChain[Provider], executor: Executor, limits: Limits):
        self.chain = chain
        self.executor = executor
        self.limits = limits

    def open(self, config: video_pb2.VideoConfig, sampling_free: bool = False) -> StreamSession:
        """A session for `config`; ValueError names what is wrong (shared with the CLI)."""
        if config.provider and config.provider not in self.chain.names:
            raise ValueError(f"unknown or unavailable provider {config.provider!r}; "
                             f"this server has {', '.join(self.chain.names)}")
        first = config.provider or self.chain.names[0]
        return StreamSession(config, self.chain, first, self.executor, self.limits,
                             config.stream_id or uuid.uuid4().hex[:12], sampling_free=sampling_free)

    def analyze_local(self, requests: AsyncIterator[video_pb2.AnalyzeRequest], *,
                      sampling_free: bool = False) -> AsyncIterator[video_pb2.AnalyzeResponse]:
        """The same stream without a server: ValueError instead of an INVALID_ARGUMENT status."""
        return self._analyze(requests, LocalContext(), sampling_free)  # type: ignore[arg-type]

    async def Analyze(self, request_iterator: AsyncIterator[video_pb2.AnalyzeRequest],
                      context: grpc.aio.ServicerContext) -> AsyncIterator[video_pb2.AnalyzeResponse]:
        # An async generator function itself (not a function returning one): what grpc.aio and the
        # OTel interceptor expect of a bidi handler.
        async for response in self._analyze(request_iterator, context, False):
            yield response

    async def _analyze(self, request_iterator: AsyncIterator[video_pb2.AnalyzeRequest],
                       context: grpc.aio.ServicerContext, sampling_free: bool) -> AsyncIterator[video_pb2.AnalyzeResponse]:
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if first.WhichOneof("msg") != "config":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                "the first message must be a VideoConfig (consent, sampling, role)")
        try:
            session = self.open(first.config, sampling_free)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        with logs.bind(stream_id=session.stream_id):
            log.info("video stream opened", extra={"provider": session.provider_name,
                                                   "consent_screen": session.consent[2], "consent_camera": session.consent[1]})
            session.start()

            async def read() -> None:
                async for req in request_iterator:
                    await session.handle(req)  # awaits when the client does not read: back-pressure
                await session.finish()

            reader = asyncio.create_task(read(), name=f"video-reader-{session.stream_id}")
            try:
                while True:
                    if reader.done():
                        reader.result()  # a failed reader ends the call with its error
                        msg = await session.out.get()  # it finished cleanly: the rest, then None
                    else:
                        getter = asyncio.ensure_future(session.out.get())
                        done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                        if getter not in done:
                            getter.cancel()
                            continue
                        msg = getter.result()
                    if msg is None:
                        break
                    yield msg
            finally:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
                await session.aclose()
                log.info("video stream closed", extra=dict(counters(session)))
