"""A fake Gemini API (generativelanguage) on loopback, speaking the real streaming wire protocol.

POST /{api_version}/models/{model}:streamGenerateContent?alt=sse with header x-goog-api-key;
the answer is Server-Sent Events, each `data: <GenerateContentResponse JSON>\\r\\n\\r\\n`, every
payload checked against google-genai's own pydantic type. Errors are Google's JSON error body
with the HTTP status (429, 500, ...).

Knobs: `script` (what the next requests answer), `first_delay_s` / `chunk_delay_s` (latency),
`status` (an HTTP error for every request). It records every request body and notices when the
client closes a stream before the end (`disconnects`, with the monotonic time it was noticed).
"""
from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake
from google.genai import types

from tests.fakes import validated

API_KEY = "fake-gemini-key-0123456789"


@dataclass
class Reply:
    """One scripted answer: text pieces (one SSE event each) and optional function calls."""

    chunks: list[str] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finish: str = "STOP"
    status: int = 200  # != 200: answer with this HTTP error instead
    drop_after: int | None = None  # drop the TCP connection after this many text events


def text_event(text: str) -> dict[str, Any]:
    return validated(types.GenerateContentResponse, {
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
        "modelVersion": "gemini-fake-001",
        "responseId": "fake-response",
    })


def final_event(calls: list[tuple[str, dict[str, Any]]], finish: str, prompt_tokens: int,
                output_tokens: int) -> dict[str, Any]:
    parts = [{"functionCall": {"name": name, "args": args}} for name, args in calls]
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    if parts:
        candidate["content"] = {"role": "model", "parts": parts}
    return validated(types.GenerateContentResponse, {
        "candidates": [candidate],
        "usageMetadata": {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                          "totalTokenCount": prompt_tokens + output_tokens},
        "modelVersion": "gemini-fake-001",
        "responseId": "fake-response",
    })


# Validated and encoded once per distinct event, so a load run measures the client, not the fake.
@functools.lru_cache(maxsize=1024)
def _sse_text(text: str) -> bytes:
    return b"data: " + json.dumps(text_event(text)).encode() + b"\r\n\r\n"


@functools.lru_cache(maxsize=1024)
def _sse_final(calls_json: str, finish: str, prompt_tokens: int, output_tokens: int) -> bytes:
    calls = [(name, args) for name, args in json.loads(calls_json)]
    return b"data: " + json.dumps(final_event(calls, finish, prompt_tokens, output_tokens)).encode() + b"\r\n\r\n"


def error_body(status: int) -> dict[str, Any]:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
             429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
    return {"error": {"code": status, "message": f"fake gemini error {status}",
                      "status": names.get(status, "UNKNOWN")}}


class FakeGemini(HttpFake["Reply"]):
    """aiohttp server; `async with FakeGemini() as fake: fake.base_url`."""

    route = "/{version}/models/{rest}"

    def __init__(self, *, first_delay_s: float = 0.0, chunk_delay_s: float = 0.0,
                 default: Reply | None = None, port: int = 0, record: bool = True):
        super().__init__(default or Reply(chunks=["Thanks, ", "that helps. ", "What would you ", "try next?"]),
                         first_delay_s=first_delay_s, chunk_delay_s=chunk_delay_s, port=port, record=record)
        self.paths: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        rest = request.match_info["rest"]
        if request.headers.get("x-goog-api-key") != API_KEY:
            return web.json_response(error_body(401) | {}, status=401)
        if not rest.endswith(":streamGenerateContent") or request.query.get("alt") != "sse":
            return web.json_response(error_body(400), status=400)
        body = await request.json()
        if self.record:
            self.requests.append(body)
            self.paths.append(request.path)
        reply = self._next_reply(body)
        if reply.status != 200:
            return web.json_response(error_body(reply.status), status=reply.status)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            await asyncio.sleep(self.first_delay_s)
            for i, chunk in enumerate(reply.chunks):
                if i:
                    await asyncio.sleep(self.chunk_delay_s)
                if reply.drop_after is not None and i >= reply.drop_after:
                    assert request.transport is not None
                    request.transport.close()  # mid-stream failure, as a dying upstream looks
                    return resp
                await self._send(resp, _sse_text(chunk))
            prompt_tokens = len(json.dumps(body)) // 4
            output_tokens = sum(len(c) for c in reply.chunks) // 4 + len(reply.calls)
            await self._send(resp, _sse_final(json.dumps(reply.calls), reply.finish, prompt_tokens, output_tokens))
            await resp.write_eof()
            self.completed += 1
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client goes away
            self.disconnects.append(time.monotonic())
            raise
        except ConnectionResetError:  # or a write fails first (aiohttp's error subclasses it)
            self.disconnects.append(time.monotonic())
        return resp

    @staticmethod
    async def _send(resp: web.StreamResponse, event: bytes) -> None:
        await resp.write(event)


async def _serve(port: int, first_delay_s: float, chunk_delay_s: float) -> None:
    fake = FakeGemini(first_delay_s=first_delay_s, chunk_delay_s=chunk_delay_s, port=port, record=False)
    async with fake:
        print(fake.port, flush=True)  # the parent reads the port from the first line
        await asyncio.Event().wait()


def main() -> None:
    """`python -m tests.fakes.gemini --first-delay-ms 50`: the fake as its own process (load runs)."""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--first-delay-ms", type=float, default=0.0)
    p.add_argument("--chunk-delay-ms", type=float, default=0.0)
    a = p.parse_args()
    try:
        asyncio.run(_serve(a.port, a.first_delay_ms / 1000, a.chunk_delay_ms / 1000))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
