"""Cartesia over its websocket, through the cartesia SDK: one context per utterance, each piece
sent as a continuation (prosody carries across pieces) with a flush so its audio is delimited by
a flush_done, raw pcm_s16le at the caller's rate, and a cancel frame on barge-in.

Each utterance has a connection to itself (natural websocket back-pressure, and a dropped socket
hurts one utterance only); a few warm connections are kept for the next utterance so it does not
pay the TLS handshake. The SDK's own background reader is not used: it swallows a dropped socket,
and a drop must fail over to the next provider at once.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any, get_args

import numpy as np
from cartesia import AsyncCartesia
from cartesia.lib._tts import AsyncTTSResourceConnection
from cartesia.types.supported_language import SupportedLanguage
from cartesia.types.websocket_client_event import CancelContextRequest
from websockets.exceptions import ConnectionClosed

from interview.v1 import common_pb2
from services.common.audio import pcm_to_int16
from services.tts.config import CartesiaSettings
from services.tts.providers.base import ProviderError, ProviderStream, TtsProvider, Utterance

log = logging.getLogger("tts.cartesia")
CLOSE_TIMEOUT_S = 1.0
# The languages Cartesia documents, from its own SDK (SupportedLanguage = Union[Literal[...], str],
# generated from its OpenAPI spec), so an SDK upgrade brings new ones along.
LANGUAGES: tuple[str, ...] = next(get_args(t) for t in get_args(SupportedLanguage) if get_args(t))


class CartesiaProvider(TtsProvider):
    name = "cartesia"

    def __init__(self, settings: CartesiaSettings):
        s = settings
        self.client = AsyncCartesia(api_key=s.api_key, base_url=s.base_url, websocket_base_url=s.ws_url or None)
        self.model, self.default_voice, self.timeout_s = s.model, s.voice, s.timeout_s
        self.idle_max = s.idle_connections
        self._idle: list[AsyncTTSResourceConnection] = []

    def capabilities(self) -> common_pb2.ProviderCapabilities:
        """Voices: any id (they are account-specific: cloned and library voices), so none listed.
        Built only with an API key, hence available (a dead key shows as failures, then fallback)."""
        return common_pb2.ProviderCapabilities(provider=self.name, languages=LANGUAGES, available=True)

    def has_voice(self, voice: str) -> bool:
        """Cartesia voice ids cannot be checked offline; any non-empty id is passed on."""
        return bool(voice)

    def open(self, utterance: Utterance) -> CartesiaStream:
        return CartesiaStream(self, utterance)

    async def acquire(self, fresh: bool = False) -> tuple[AsyncTTSResourceConnection, bool]:
        """A connection for one utterance, and whether it is a warm (previously used) one."""
        if self._idle and not fresh:
            return self._idle.pop(), True
        try:
            return await asyncio.wait_for(self.client.tts.websocket_connect().enter(), self.timeout_s), False
        except Exception as exc:  # refused, 401, TLS, timeout: all mean "use the next provider"
            raise ProviderError(f"cannot connect to Cartesia: {type(exc).__name__}: {exc}") from exc

    async def release(self, conn: AsyncTTSResourceConnection, reusable: bool) -> None:
        if reusable and len(self._idle) < self.idle_max:
            self._idle.append(conn)
            return
        await _close(conn)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        await asyncio.gather(*(_close(c) for c in idle))
        await self.client.close()


async def _close(conn: AsyncTTSResourceConnection) -> None:
    try:
        await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT_S)
    except (Exception, asyncio.TimeoutError):
        pass


class CartesiaStream(ProviderStream):
    def __init__(self, provider: CartesiaProvider, utterance: Utterance):
        self.p = provider
        self.u = utterance
        self.context_id = f"{utterance.generation_id or 'tts'}-{uuid.uuid4().hex[:12]}"
        self.voice = utterance.voice if provider.has_voice(utterance.voice) else provider.default_voice
        self._conn: AsyncTTSResourceConnection | None = None
        self._flushes = 0
        self._finished = False

    def _request(self, transcript: str, *, more: bool) -> dict[str, Any]:
        req: dict[str, Any] = {
            "context_id": self.context_id, "model_id": self.p.model, "transcript": transcript,
            "voice": {"mode": "id", "id": self.voice}, "language": self.u.language.split("-")[0],
            "output_format": {"container": "raw", "encoding": "pcm_s16le", "sample_rate": self.u.rate},
            "continue": more,
        }
        if more:
            req["flush"] = True
        if self.u.speed and self.u.speed != 1.0:
            req["generation_config"] = {"speed": self.u.speed}
        return req

    async def _send(self, req: dict[str, Any]) -> AsyncTTSResourceConnection:
        if self._conn is None:
            self._conn, warm = await self.p.acquire()
        else:
            warm = False
        try:
            await self._conn.send(req)  # type: ignore[arg-type]
        except ConnectionClosed as exc:
            if not warm:
                raise ProviderError(f"Cartesia connection dropped: {exc}") from exc
            # A warm socket the server closed while it sat idle: one try on a fresh one.
            await _close(self._conn)
            self._conn = None
            self._conn, _ = await self.p.acquire(fresh=True)
            try:
                await self._conn.send(req)  # type: ignore[arg-type]
            except ConnectionClosed as exc2:
                raise ProviderError(f"Cartesia connection dropped: {exc2}") from exc2
        return self._conn

    async def _events(self, conn: AsyncTTSResourceConnection) -> AsyncIterator[Any]:
        """This context's events; a drop, an error event or silence past the timeout raise."""
        while True:
            try:
                async with asyncio.timeout(self.p.timeout_s):
                    event = await conn.recv()
            except asyncio.TimeoutError:
                raise ProviderError(f"no reply from Cartesia within {self.p.timeout_s:.1f}s") from None
            except ConnectionClosed as exc:
                raise ProviderError(f"Cartesia connection dropped: {exc}") from exc
            if event.type == "error":
                if event.context_id in (None, self.context_id):
                    raise ProviderError(f"Cartesia error {event.status_code or ''} "
                                        f"{event.title or ''}: {event.message or event.error_code or ''}".strip())
                continue
            if getattr(event, "context_id", None) != self.context_id:
                continue  # a late event of an earlier, cancelled context on this socket
            yield event

    async def synthesize(self, text: str) -> AsyncIterator[np.ndarray]:
        conn = await self._send(self._request(text.rstrip() + " ", more=True))
        self._flushes += 1
        async for event in self._events(conn):
            if event.type == "chunk":
                audio = event.audio
                if audio:
                    try:
                        yield pcm_to_int16(audio)
                    except ValueError as exc:
                        raise ProviderError(f"Cartesia sent malformed audio: {exc}") from exc
            elif event.type == "flush_done" and event.flush_id >= self._flushes:
                return
            elif event.type == "done":
                return

    async def finish(self) -> None:
        """Close the context; the socket goes back to the warm pool if it ended cleanly."""
        if self._conn is None or self._finished:
            return
        self._finished = True
        conn, self._conn = self._conn, None
        clean = False
        try:
            await conn.send(self._request("", more=False))  # type: ignore[arg-type]
            async for event in self._events(conn):
                if event.type == "done":
                    clean = True
                    break
        except (ProviderError, ConnectionClosed) as exc:
            log.info("cartesia context did not close cleanly", extra={"error": str(exc)})
        await self.p.release(conn, clean)

    async def aclose(self) -> None:
        """Cancel the context so Cartesia stops generating, and drop the socket (it may still carry
        this context's audio, so it is not reused)."""
        if self._conn is None:
            return
        conn, self._conn = self._conn, None
        self._finished = True
        try:
            await asyncio.wait_for(conn.send(CancelContextRequest(cancel=True, context_id=self.context_id)),
                                   CLOSE_TIMEOUT_S)
        except (Exception, asyncio.TimeoutError):
            pass
        await _close(conn)
