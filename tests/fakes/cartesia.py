"""A loopback Cartesia TTS websocket server that speaks the real wire protocol.

GET /tts/websocket with `Authorization: Bearer KEY` (401 otherwise). Client frames are JSON
generation requests (context_id, model_id, transcript, voice, output_format, continue, flush,
...) or {"cancel": true, "context_id": ...}. Per context the server buffers transcripts; a flush
or `continue: false` generates the buffered text and answers `chunk` messages (base64 raw audio,
flush_id), then `flush_done` (after a flush) or `done` (after `continue: false`). Errors are
`error` messages. The audio is real speech (flite, resampled to the requested rate) so round
trips through it can be transcribed.

Every request received is checked against the SDK's GenerationRequest / CancelContextRequest
types, and every message sent goes through `validated(...)` against the SDK's response types.

Knobs: `drop_after_chunks` (abort the TCP connection after N chunks, server-wide),
`error_on_request` (answer the Nth generation request with an error), `chunk_delay_s`
(pace the chunks), `api_key` (anything else is refused with HTTP 401).
"""
from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from cartesia.types.generation_request import GenerationRequest
from cartesia.types.websocket_client_event import CancelContextRequest
from cartesia.types.websocket_response import Chunk, Done, Error, FlushDone
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from services.common.audio import resample
from services.tts.providers.offline import parse_wav
from tests.fakes import validated

CHUNK_MS = 20


@dataclass
class _Context:
    id: str
    requests: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    flushes: int = 0


class FakeCartesia:
    def __init__(self, api_key: str = "test-key", *, drop_after_chunks: int | None = None,
                 error_on_request: int | None = None, chunk_delay_s: float = 0.0):
        self.api_key = api_key
        self.drop_after_chunks = drop_after_chunks
        self.error_on_request = error_on_request
        self.chunk_delay_s = chunk_delay_s
        self.received: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self.connections = 0
        self.chunks_sent = 0
        self.sent_after_cancel = 0
        self.generation_requests = 0
        self._server: Server | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """Environment that points the tts service's Cartesia provider at this fake."""
        return {"TTS_PROVIDERS": "cartesia,offline", "CARTESIA_API_KEY": self.api_key,
                "TTS_CARTESIA_BASE_URL": self.base_url, "TTS_CARTESIA_WS_URL": self.ws_url}

    async def __aenter__(self) -> FakeCartesia:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def _check(self, conn: ServerConnection, request: Request) -> Response | None:
        if not request.path.startswith("/tts/websocket"):
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return conn.respond(HTTPStatus.UNAUTHORIZED, "Invalid API key\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        contexts: dict[str, _Context] = {}
        try:
            async for raw in ws:
                msg = json.loads(raw)
                self.received.append(msg)
                if msg.get("cancel"):
                    CancelContextRequest.model_validate(msg)
                    self.cancelled.append(msg["context_id"])
                    ctx = contexts.pop(msg["context_id"], None)
                    if ctx and ctx.task:
                        ctx.task.cancel()
                    continue
                GenerationRequest.model_validate(msg)
                ctx = contexts.get(msg["context_id"])
                if ctx is None:
                    ctx = contexts[msg["context_id"]] = _Context(msg["context_id"])
                    ctx.task = asyncio.create_task(self._generate(ws, ctx))
                ctx.requests.put_nowait(msg)
        except ConnectionClosed:
            pass
        finally:
            for ctx in contexts.values():
                if ctx.task:
                    ctx.task.cancel()

    async def _generate(self, ws: ServerConnection, ctx: _Context) -> None:
        try:
            await self._generate_on(ws, ctx)
        except ConnectionClosed:
            pass

    async def _generate_on(self, ws: ServerConnection, ctx: _Context) -> None:
        text = ""
        while (req := await ctx.requests.get()) is not None:
            self.generation_requests += 1
            if self.generation_requests == self.error_on_request:
                await ws.send(json.dumps(validated(Error, {
                    "type": "error", "context_id": ctx.id, "done": True, "status_code": 500,
                    "title": "Generation failed", "message": "the model is overloaded", "error_code": "overloaded",
                    "request_id": "req-fake"})))
                return
            fmt = req["output_format"]
            if fmt["encoding"] != "pcm_s16le":
                raise NotImplementedError("the fake speaks pcm_s16le only")
            text += req["transcript"]
            more = req.get("continue", False)
            if req.get("flush") or not more:
                flush_id = None
                if req.get("flush"):
                    ctx.flushes += 1
                    flush_id = ctx.flushes
                if text.strip():
                    await self._speak(ws, ctx, text, fmt["sample_rate"], flush_id)
                text = ""
                if flush_id is not None:
                    await ws.send(json.dumps(validated(FlushDone, {
                        "type": "flush_done", "context_id": ctx.id, "done": False, "flush_done": True,
                        "flush_id": flush_id, "status_code": 200})))
            if not more:
                await ws.send(json.dumps(validated(Done, {
                    "type": "done", "context_id": ctx.id, "done": True, "status_code": 200})))
                return

    async def _speak(self, ws: ServerConnection, ctx: _Context, text: str, rate: int, flush_id: int | None) -> None:
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "flite", "-voice", "rms", "-t", text, "-o", "/dev/stdout",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        try:
            out, _ = await proc.communicate()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        samples, in_rate = parse_wav(out)
        samples = resample(samples, in_rate, rate)
        step = rate * CHUNK_MS // 1000
        for i in range(0, len(samples), step):
            if self.chunk_delay_s:
                await asyncio.sleep(self.chunk_delay_s)
            if ctx.id in self.cancelled:
                self.sent_after_cancel += 1
            payload = {"type": "chunk", "context_id": ctx.id, "done": False, "status_code": 206,
                       "step_time": round((time.perf_counter() - start) * 1000, 3),
                       "data": base64.b64encode(np.asarray(samples[i:i + step], dtype="<i2").tobytes()).decode()}
            if flush_id is not None:
                payload["flush_id"] = flush_id
            await ws.send(json.dumps(validated(Chunk, payload)))
            self.chunks_sent += 1
            if self.chunks_sent == self.drop_after_chunks:
                assert ws.transport is not None
                ws.transport.abort()  # a dropped socket, not a clean close
                return
