"""A fake Deepgram live-transcription server (websockets, loopback) speaking the real wire protocol.

GET /v1/listen?<params> with `Authorization: Token KEY` (401 otherwise); binary frames are linear16
audio; text frames are {"type": "Finalize" | "KeepAlive" | "CloseStream"}. It answers with Results
(interim every `interim_s` of audio, final with from_finalize after a Finalize) and Metadata on
CloseStream, each validated against the SDK's own types. Transcripts are real: a pocketsphinx
decoder per connection ("pocketsphinx", its word posteriors as the words' confidences and their
mean as the transcript's), or a cheap deterministic one for load runs ("count": one
word per 0.3 s of audio, so results cost no CPU and latency measures the plumbing).

Knobs: drop_after_s (abort the first connection after that much audio, mid-utterance),
refuse_after_drop (then refuse every new connection with 503), result_delay_s (delay final
results), api_key (any other key gets 401), idle_timeout_s (close like Deepgram's NET-0001 when
neither audio nor KeepAlive arrives for that long).
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
from deepgram.listen.v1.types import ListenV1Metadata, ListenV1Results
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from tests.fakes import validated

RATE_DEFAULT = 16000
Word = tuple[str, float, float, float]  # (word, start_s, end_s, confidence)


@dataclass
class Connection:
    path: str
    query: dict[str, list[str]]
    authorization: str
    audio_bytes: int = 0
    keepalives: int = 0
    finalizes: int = 0
    close_streams: int = 0
    sent: list[dict[str, Any]] = field(default_factory=list)


FILLERS = frozenset("um umm uh uhh er erm ah hmm".split())  # what Deepgram's filler_words adds


class _Pocketsphinx:
    _idle: list[Any] = []  # decoders are slow to load: reuse them across connections

    def __init__(self, rate: int):
        from pocketsphinx import Decoder

        from services.common.audio import Resampler

        self.decoder = self._idle.pop() if self._idle else Decoder(loglevel="FATAL")
        self.cmn = "40,3,-1,0,0,0,0,0,0,0,0,0,0"  # pocketsphinx's initial value: same start every utterance
        self.resampler = Resampler(rate, 16000)
        self.open = False

    def feed(self, pcm: bytes) -> None:
        if not self.open:
            self.decoder.set_cmn(self.cmn)
            self.decoder.start_utt()
            self.open = True
        samples = self.resampler.process(np.frombuffer(pcm, dtype="<i2"))
        self.decoder.process_raw(samples.tobytes(), False, False)

    def partial(self) -> str:
        hyp = self.decoder.hyp() if self.open else None
        return hyp.hypstr if hyp else ""

    def final(self) -> tuple[str, list[Word]]:
        if not self.open:
            return "", []
        self.decoder.end_utt()
        self.open = False
        hyp = self.decoder.hyp()
        words = [(s.word.split("(")[0], s.start_frame / 100, (s.end_frame + 1) / 100, float(s.prob))
                 for s in self.decoder.seg() if not s.word.startswith(("<", "["))]
        return (hyp.hypstr if hyp else ""), words

    def release(self) -> None:
        if self.open:
            self.decoder.end_utt()
        self._idle.append(self.decoder)


class _Count:
    """Deterministic: one word per 0.3 s of audio since the utterance started."""

    def __init__(self, rate: int):
        self.rate = rate
        self.samples = 0

    def feed(self, pcm: bytes) -> None:
        self.samples += len(pcm) // 2

    def _words(self) -> list[Word]:
        n = int(self.samples / self.rate / 0.3)
        return [(f"word{i}", i * 0.3, (i + 1) * 0.3, 0.9) for i in range(n)]

    def partial(self) -> str:
        return " ".join(w[0] for w in self._words())

    def final(self) -> tuple[str, list[Word]]:
        words = self._words()
        self.samples = 0
        return " ".join(w[0] for w in words), words

    def release(self) -> None:
        pass


class FakeDeepgram:
    def __init__(self, api_key: str = "fake-deepgram-key-123", *, recognizer: str = "pocketsphinx",
                 interim_s: float = 0.5, drop_after_s: float | None = None, refuse_after_drop: bool = False,
                 result_delay_s: float = 0.0, idle_timeout_s: float | None = None):
        self.api_key = api_key
        self.recognizer = recognizer
        self.interim_s = interim_s
        self.drop_after_s = drop_after_s
        self.refuse_after_drop = refuse_after_drop
        self.result_delay_s = result_delay_s
        self.idle_timeout_s = idle_timeout_s
        self.connections: list[Connection] = []
        self.rejected = 0
        self.dropped = False
        self._server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> "FakeDeepgram":
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check, close_timeout=0.5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> "FakeDeepgram":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != "/v1/listen":
            return connection.respond(404, "not found\n")
        if request.headers.get("Authorization") != f"Token {self.api_key}":
            self.rejected += 1
            return connection.respond(401, "invalid credentials\n")
        if self.dropped and self.refuse_after_drop:
            return connection.respond(503, "unavailable\n")
        return None

    async def _send(self, ws: ServerConnection, conn: Connection, model: Any, payload: dict[str, Any]) -> None:
        conn.sent.append(validated(model, payload))
        await ws.send(json.dumps(payload))

    def _results(self, text: str, words: list[Word], start: float, duration: float,
                 is_final: bool, from_finalize: bool) -> dict[str, Any]:
        # Deepgram's transcript confidence is its own model's; here the recogniser's word posteriors'
        # mean (pocketsphinx: low for noisy or garbled audio), so a test sees a real difference.
        confidence = sum(w[3] for w in words) / len(words) if words else (0.9 if text else 0.0)
        return {
            "type": "Results", "channel_index": [0, 1], "duration": float(duration), "start": float(start),
            "is_final": is_final, "speech_final": from_finalize, "from_finalize": from_finalize,
            "channel": {"alternatives": [{
                "transcript": text, "confidence": confidence,
                "words": [{"word": w, "start": float(start + s), "end": float(start + e), "confidence": p,
                           "punctuated_word": w} for w, s, e, p in words],
            }]},
            "metadata": {"request_id": str(uuid.uuid4()), "model_uuid": str(uuid.uuid4()),
                         "model_info": {"name": "fake-general", "version": "2026-01-01", "arch": "fake"}},
        }

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        split = urlsplit(request.path)
        query = parse_qs(split.query)
        conn = Connection(split.path, query, request.headers.get("Authorization", ""))
        self.connections.append(conn)
        rate = int(query.get("sample_rate", [RATE_DEFAULT])[0])
        rec: Any = _Pocketsphinx(rate) if self.recognizer == "pocketsphinx" else _Count(rate)
        loop = asyncio.get_running_loop()
        total = utt_start = 0.0  # seconds of audio on this connection / where the open utterance began
        next_interim = self.interim_s
        try:
            while True:
                try:
                    message = await asyncio.wait_for(ws.recv(), self.idle_timeout_s)
                except asyncio.TimeoutError:
                    await ws.close(1011, "NET-0001: no audio received within the timeout")
                    return
                if isinstance(message, bytes):
                    conn.audio_bytes += len(message)
                    total += len(message) / 2 / rate
                    await loop.run_in_executor(None, rec.feed, message)
                    if self.drop_after_s is not None and not self.dropped and total >= self.drop_after_s:
                        self.dropped = True
                        ws.transport.abort()  # mid-utterance, no close frame: a dropped socket
                        return
                    if query.get("interim_results") == ["true"] and total - utt_start >= next_interim:
                        next_interim += self.interim_s
                        text = await loop.run_in_executor(None, rec.partial)
                        await self._send(ws, conn, ListenV1Results,
                                         self._results(text, [], utt_start, total - utt_start, False, False))
                    continue
                kind = json.loads(message).get("type")
                if kind == "KeepAlive":
                    conn.keepalives += 1
                elif kind == "Finalize":
                    conn.finalizes += 1
                    text, words = await loop.run_in_executor(None, rec.final)
                    if query.get("filler_words") != ["true"]:  # Deepgram strips hesitations unless asked
                        words = [w for w in words if w[0] not in FILLERS]
                        text = " ".join(w for w in text.split() if w not in FILLERS)
                    if self.result_delay_s:
                        await asyncio.sleep(self.result_delay_s)
                    await self._send(ws, conn, ListenV1Results,
                                     self._results(text, words, utt_start, total - utt_start, True, True))
                    utt_start, next_interim = total, self.interim_s
                elif kind == "CloseStream":
                    conn.close_streams += 1
                    await self._send(ws, conn, ListenV1Metadata, {
                        "type": "Metadata", "transaction_key": "deprecated", "request_id": str(uuid.uuid4()),
                        "sha256": "0" * 64, "created": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                        "duration": float(total), "channels": 1})
                    await ws.close()
                    return
        except Exception:
            return
        finally:
            rec.release()
