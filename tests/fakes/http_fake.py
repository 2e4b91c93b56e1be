"""What the HTTP streaming fakes (Gemini, OpenAI-compatible) share: an aiohttp server on a
loopback port, scripted replies (`script` in order, then `responder`, then `default`), and the
record of requests and client disconnects a cancellation test waits for."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from aiohttp import web

R = TypeVar("R")


class HttpFake(Generic[R]):
    route = ""  # POST path pattern the subclass serves with `_handle`

    def __init__(self, default: R, *, first_delay_s: float, chunk_delay_s: float, port: int, record: bool):
        self.first_delay_s = first_delay_s
        self.chunk_delay_s = chunk_delay_s
        self.default = default
        self.script: list[R] = []  # consumed in order; then `default`
        self.responder: Callable[[dict[str, Any]], R] | None = None
        self.requests: list[dict[str, Any]] = []
        self.disconnects: list[float] = []
        self.completed = 0
        self._runner: web.AppRunner | None = None
        self.port = port
        self.record = record  # off for long load runs: nothing grows

    async def __aenter__(self) -> Any:
        app = web.Application()
        app.router.add_post(self.route, self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def wait_disconnect(self, timeout: float = 2.0) -> float:
        """Monotonic time the last client disconnect was noticed."""
        deadline = time.monotonic() + timeout
        while not self.disconnects and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        if not self.disconnects:
            raise TimeoutError("the client never closed the stream")
        return self.disconnects[-1]

    def _next_reply(self, body: dict[str, Any]) -> R:
        if self.script:
            return self.script.pop(0)
        if self.responder is not None:
            return self.responder(body)
        return self.default

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raise NotImplementedError
