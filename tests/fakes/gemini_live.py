"""A fake Gemini Live API: the BidiGenerateContent websocket over TLS on loopback.

The SDK forces wss:// whenever an API key is set, so the fake serves TLS with a self-signed
certificate made per test (`make_cert`), trusted by the client through its SSL context. Wire:
the client's first message is `setup`, answered by `setupComplete`; then `realtimeInput.video`
(base64 JPEG) and `clientContent` turns; replies are `serverContent.modelTurn.parts[].text` then
`serverContent.turnComplete`, plus `sessionResumptionUpdate` and `goAway`. Every client message is
validated against the SDK's LiveClientMessage and every server message against LiveServerMessage.

Knobs: `replies` (text of the next turns, one per turn; pieces are sent as separate messages),
`go_away_after_turns`, `drop_after_turns` (abort the TCP connection), `refuse` (close code and
reason for every new session, e.g. 1011 quota). Records: `setups`, `frames`, `turns`, `connections`.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.genai import types
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

from tests.fakes import validated

API_KEY = "fake-gemini-live-key-0123456789"
PATH = re.compile(r"/ws/google\.ai\.generativelanguage\.v1(?:alpha|beta)?\.GenerativeService\.BidiGenerateContent")


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl CLI; files under the test's tmp dir)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@dataclass
class FakeGeminiLive:
    cert: Path
    key: Path
    replies: list[list[str]] = field(default_factory=list)
    go_away_after_turns: int | None = None
    drop_after_turns: int | None = None
    refuse: tuple[int, str] | None = None
    setups: list[dict[str, Any]] = field(default_factory=list)
    frames: list[bytes] = field(default_factory=list)
    turns: list[str] = field(default_factory=list)
    connections: int = 0
    closed_abruptly: int = 0  # the client went away without a close frame or with an error code
    headers: list[dict[str, str]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    port: int = 0
    _handles: int = 0
    _server: Any = None

    async def start(self) -> "FakeGeminiLive":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        self._server = await serve(self._handle, "127.0.0.1", 0, ssl=ctx, max_size=16 * 1024 * 1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _send(self, ws: ServerConnection, payload: dict[str, Any]) -> None:
        await ws.send(json.dumps(validated(types.LiveServerMessage, payload)))

    def _parse(self, raw: str | bytes) -> dict[str, Any]:
        data = json.loads(raw)
        try:
            types.LiveClientMessage.model_validate(data)
        except Exception as exc:  # recorded, so the test fails on the request side
            self.invalid.append(f"{exc}"[:300])
        return data

    async def _handle(self, ws: ServerConnection) -> None:
        try:
            await self._session(ws)
        except ConnectionClosedOK:
            pass
        except ConnectionClosed:
            self.closed_abruptly += 1

    async def _session(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.headers.append({k.lower(): v for k, v in ws.request.headers.items()})
        if not PATH.fullmatch(ws.request.path.split("?")[0]):
            await ws.close(1008, f"unknown path {ws.request.path}")
            return
        setup = self._parse(await ws.recv())
        assert "setup" in setup, setup
        self.setups.append(setup["setup"])
        if self.refuse is not None:
            await ws.close(*self.refuse)
            return
        await self._send(ws, {"setupComplete": {}})
        turns_here = 0
        async for raw in ws:
            msg = self._parse(raw)
            rt = msg.get("realtimeInput") or msg.get("realtime_input")
            if rt and "video" in rt:
                data = rt["video"]["data"]
                self.frames.append(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))
                continue
            cc = msg.get("clientContent") or msg.get("client_content")
            if not cc:
                continue
            text = "".join(p.get("text", "") for t in cc.get("turns", []) for p in t.get("parts", []))
            self.turns.append(text)
            turns_here += 1
            if self.drop_after_turns is not None and len(self.turns) == self.drop_after_turns:
                ws.transport.abort()  # a dropped socket mid-turn: no close frame
                return
            reply = self.replies.pop(0) if self.replies else ['{"observations": []}']
            for piece in reply:
                await self._send(ws, {"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": piece}]}}})
            await self._send(ws, {"serverContent": {"turnComplete": True},
                                  "usageMetadata": {"promptTokenCount": 300, "responseTokenCount": 40,
                                                    "totalTokenCount": 340}})
            self._handles += 1
            await self._send(ws, {"sessionResumptionUpdate": {"newHandle": f"handle-{self._handles}",
                                                              "resumable": True}})
            if self.go_away_after_turns is not None and len(self.turns) == self.go_away_after_turns:
                await self._send(ws, {"goAway": {"timeLeft": "1s"}})
                await asyncio.sleep(0.05)
                await ws.close(1000, "go away")
                return
