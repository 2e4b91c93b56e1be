"""Deepgram provider: the official SDK's async websocket client (deepgram-sdk 7.x).

Linear16 at the stream's rate, interim results on, Deepgram's endpointing off (our VAD decides
when an utterance ends and the orchestrator's FINALIZE becomes Deepgram's Finalize), KeepAlive
while no audio flows, and reconnect with exponential backoff. Unlike the usual approach, audio is
not dropped during a reconnect: everything since the last final result is kept (bounded) in an
ordered log with the Finalize requests between it, and replayed on the new connection, so the
utterance in flight is still transcribed.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import grpc

from interview.v1 import common_pb2, stt_pb2
from services.stt.config import DeepgramSettings
from services.stt.providers.base import (Audio, Emit, FinalizeMark, LogItem, ProviderFailure, ProviderNotice,
                                         ProviderResult, Session, SttProvider, WordResult, is_filler)
from services.stt.segments import SegmentMap

log = logging.getLogger("stt.deepgram")

_Event = common_pb2.ProviderEvent

# Languages Deepgram documents per streaming model (developers.deepgram.com "Models & Languages
# Overview" and its Nova-3 changelog entries, 2025-08 .. 2026-03), without "multi" (code-switching,
# not a BCP-47 tag). A model not listed here declares none (= any): Deepgram itself refuses a
# language it lacks when the stream connects.
DOCUMENTED_LANGUAGES: dict[str, tuple[str, ...]] = {
    "nova-3": (
        "en", "en-US", "en-AU", "en-GB", "en-IN", "en-NZ", "de", "de-CH", "nl", "nl-BE", "sv", "sv-SE", "da",
        "da-DK", "es", "es-419", "fr", "fr-CA", "pt", "pt-BR", "pt-PT", "it", "tr", "no", "id", "bg", "cs", "fi",
        "hi", "hu", "ja", "ko", "ko-KR", "pl", "ru", "uk", "vi", "ca", "et", "el", "lv", "lt", "ms", "ro", "sk",
        "be", "bn", "bs", "hr", "kn", "mk", "mr", "sr", "sl", "ta", "tl", "te", "he", "fa", "ur", "th", "th-TH",
        "zh", "zh-CN", "zh-Hans", "zh-TW", "zh-Hant", "zh-HK"),
}


class DeepgramProvider(SttProvider):
    """Process-wide Deepgram settings and SDK client; makes one session per stream."""

    name = "deepgram"

    def __init__(self, settings: DeepgramSettings):
        from deepgram import AsyncDeepgramClient, DeepgramClientEnvironment

        url = settings.url
        http = url.replace("wss://", "https://").replace("ws://", "http://")
        environment = DeepgramClientEnvironment(base=http, production=url, agent=url, agent_rest=http)
        self.client = AsyncDeepgramClient(api_key=settings.api_key, environment=environment)
        self.model = settings.model
        self.keepalive_s = settings.keepalive_s
        self.backoff = settings.backoff
        self.max_replay_s = settings.max_replay_s
        self.languages = DOCUMENTED_LANGUAGES.get(self.model, ())

    def check(self, config: stt_pb2.SttConfig) -> None:
        if config.model and config.model != self.model:  # another model's languages are Deepgram's to judge
            return
        super().check(config)

    def session(self, rate: int, emit: Emit, config: stt_pb2.SttConfig) -> "DeepgramSession":
        # Interim results always on, even when the caller wants none: a FINALIZE answered by
        # deadline carries the latest one.
        params: dict[str, Any] = {
            "model": config.model or self.model, "encoding": "linear16", "sample_rate": str(rate), "channels": "1",
            "interim_results": "true", "endpointing": "false", "punctuate": "true",
            "language": config.language or "en-US",
            # Deepgram strips "uh"/"um" unless asked; turn-taking holds on them. The SDK's connect()
            # has no argument for it, so it goes as an extra query parameter.
            "request_options": {"additional_query_parameters": {"filler_words": "true"}},
        }
        if config.keywords:
            params["keyterm"] = list(config.keywords)
        return DeepgramSession(self, rate, emit, params)


class DeepgramSession(Session):
    name = "deepgram"

    def __init__(self, provider: DeepgramProvider, rate: int, emit: Emit, params: dict[str, Any]):
        self.provider = provider
        self.rate = rate
        self._emit = emit
        self._params = params
        self._log: deque[LogItem] = deque()  # audio since the last final, and Finalize requests in order
        self._cursor = 0                    # next log item to send on the current connection
        self._log_samples = 0
        self._wake = asyncio.Event()
        self._closing = False
        self._map = SegmentMap(rate)
        self._task: asyncio.Task[None] | None = None
        self._healthy = False
        self.connections = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="stt-deepgram")

    async def send_audio(self, audio: Audio) -> None:
        self._log.append(audio)
        self._log_samples += len(audio.pcm) // 2
        self._bound_log()
        self._wake.set()

    async def finalize(self) -> None:
        self._log.append(FinalizeMark())
        self._wake.set()

    def unfinished(self) -> list[LogItem]:
        return list(self._log)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 1.0)  # CloseStream, Metadata, close handshake
        except (asyncio.TimeoutError, Exception):
            pass
        self._task.cancel()
        try:
            await self._task
        except (asyncio.CancelledError, Exception):
            pass

    # -- the replay log ---------------------------------------------------------------------

    def _bound_log(self) -> None:
        limit = int(self.provider.max_replay_s * self.rate)
        dropped = 0
        while self._log_samples > limit and self._log:
            item = self._log[0]
            if isinstance(item, FinalizeMark):
                break  # never reorder around a pending Finalize
            self._pop_left()
            dropped += 1
        if dropped:
            log.warning("replay buffer full: oldest audio dropped", extra={"chunks": dropped})

    def _pop_left(self) -> LogItem:
        item = self._log.popleft()
        if isinstance(item, Audio):
            self._log_samples -= len(item.pcm) // 2
        self._cursor = max(0, self._cursor - 1)
        return item

    def _trim_to(self, end_offset: int) -> None:
        """A final result covers the caller's audio up to end_offset: it need never be replayed."""
        while self._log and self._cursor > 0 and isinstance(self._log[0], Audio):
            head = self._log[0]
            assert isinstance(head, Audio)
            if head.offset + len(head.pcm) // 2 > end_offset:
                break
            self._pop_left()

    def _trim_finalized(self) -> None:
        """A from_finalize result answers the oldest sent Finalize and everything before it."""
        while self._log and self._cursor > 0:
            if isinstance(self._pop_left(), FinalizeMark):
                return

    # -- connection loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        from deepgram.core.api_error import ApiError

        delays: Iterator[float] = self.provider.backoff.delays()
        dropped = False
        while not self._closing:
            self._healthy = False
            try:
                async with self.provider.client.listen.v1.connect(**self._params) as sock:
                    self.connections += 1
                    self._cursor = 0
                    self._map = SegmentMap(self.rate)
                    if dropped:
                        log.info("deepgram reconnected; replaying buffered audio",
                                 extra={"items": len(self._log), "seconds": round(self._log_samples / self.rate, 2)})
                        await self._emit(ProviderNotice(_Event.RECONNECTED, f"replayed {self._log_samples / self.rate:.2f} s of audio"))
                    await self._pump(sock)
                    return
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.status_code in (401, 403):
                    await self._emit(ProviderFailure(grpc.StatusCode.UNAUTHENTICATED,
                                                     "Deepgram rejected the API key (check DEEPGRAM_API_KEY)"))
                    return
                reason = f"Deepgram refused the connection (HTTP {exc.status_code})"
            except Exception as exc:  # dropped socket, refused connection, protocol error
                reason = f"Deepgram connection lost: {type(exc).__name__}"
            if self._closing:
                return
            if self._healthy:
                delays = self.provider.backoff.delays()
            delay = next(delays, None)
            if delay is None:
                await self._emit(ProviderFailure(grpc.StatusCode.UNAVAILABLE,
                                                 f"{reason}; gave up after {self.provider.backoff.attempts} reconnect attempts"))
                return
            dropped = True
            log.warning("deepgram connection dropped; reconnecting", extra={"reason": reason, "delay_s": round(delay, 2)})
            await self._emit(ProviderNotice(_Event.RECONNECTING, reason))
            await asyncio.sleep(delay)

    async def _pump(self, sock: Any) -> None:
        """Send and receive on one connection until it drops (raises) or we close it (returns)."""
        receiver = asyncio.create_task(self._receive(sock))
        sender = asyncio.create_task(self._send(sock))
        try:
            done, _ = await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done and sender.exception() is None and self._closing:
                try:
                    await asyncio.wait_for(receiver, 0.5)  # Metadata after CloseStream
                except (asyncio.TimeoutError, Exception):
                    pass
                return
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            raise ConnectionError("deepgram closed the connection")
        finally:
            for task in (receiver, sender):
                task.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)

    async def _send(self, sock: Any) -> None:
        keepalive = self.provider.keepalive_s
        last_audio = time.monotonic()
        while True:
            if self._cursor < len(self._log):
                item = self._log[self._cursor]
                self._cursor += 1
                if isinstance(item, Audio):
                    self._map.append(item.offset, len(item.pcm) // 2)
                    await sock.send_media(item.pcm)
                    last_audio = time.monotonic()
                else:
                    await sock.send_finalize()
                continue
            if self._closing:
                await sock.send_close_stream()
                return
            self._wake.clear()
            try:
                async with asyncio.timeout(max(0.0, keepalive - (time.monotonic() - last_audio))):
                    await self._wake.wait()
            except asyncio.TimeoutError:
                await sock.send_keep_alive()
                last_audio = time.monotonic()

    async def _receive(self, sock: Any) -> None:
        async for msg in sock:
            self._healthy = True  # this connection worked: a later drop starts a fresh backoff
            kind = getattr(msg, "type", None)
            if kind == "Results":
                await self._result(msg)
            elif kind == "Error":
                raise ConnectionError(f"Deepgram error: {getattr(msg, 'description', '')}")

    async def _result(self, msg: Any) -> None:
        alts = msg.channel.alternatives
        if not alts:
            return
        alt, m = alts[0], self._map
        words = [WordResult(w.punctuated_word or w.word, m.to_caller(w.start), m.to_caller(w.end), w.confidence,
                            filler=is_filler(w.word)) for w in alt.words]
        result = ProviderResult(alt.transcript, bool(msg.is_final), m.to_caller(msg.start),
                                m.to_caller(msg.start + msg.duration), alt.confidence,
                                from_finalize=bool(msg.from_finalize), words=words)
        if result.from_finalize:
            self._trim_finalized()
        elif result.is_final:
            self._trim_to(result.end)
        await self._emit(result)
