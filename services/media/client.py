"""An aiortc client peer that joins like the candidate page does: one sendrecv audio transceiver,
two sendonly video transceivers (camera, screen), an "events" data channel, a non-trickle offer
POSTed with the join token. Used by `python -m services.media call`, the tests and the load driver.

What it sends and hears is timestamped (wall clock per 20 ms frame) so round-trip latency can be
measured from the audio itself.
"""
from __future__ import annotations

import asyncio
import fractions
import json
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack, VideoStreamTrack

from services.common.audio import Resampler, resample

RATE = 48000
FRAME = 960


class WavTrack(MediaStreamTrack):
    """Plays int16 mono samples (any rate) as paced 48 kHz stereo frames, then silence (or loops)."""

    kind = "audio"

    def __init__(self, samples: np.ndarray, rate: int, loop: bool = False, lead_silence_s: float = 0.0):
        super().__init__()
        pcm = resample(samples, rate, RATE) if len(samples) else np.zeros(0, np.int16)
        self.pcm = np.concatenate([np.zeros(int(lead_silence_s * RATE), np.int16), pcm])
        self.loop = loop
        self.sent_at: list[float] = []  # wall time each frame was handed to the encoder
        self._pts = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self._pts / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        pos = self._pts % len(self.pcm) if self.loop and len(self.pcm) else self._pts
        chunk = self.pcm[pos:pos + FRAME]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        frame = av.AudioFrame.from_ndarray(np.repeat(chunk, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self._pts, fractions.Fraction(1, RATE)
        self.sent_at.append(time.time())
        self._pts += FRAME
        return frame

    def sent_signal(self) -> np.ndarray:
        """What has been sent so far, at 48 kHz mono (sample i of frame k at sent_at[k])."""
        n = len(self.sent_at) * FRAME
        if self.loop and len(self.pcm):
            return np.resize(self.pcm, n)
        return np.concatenate([self.pcm, np.zeros(max(0, n - len(self.pcm)), np.int16)])[:n]


class PatternTrack(VideoStreamTrack):
    """A moving test pattern (camera or screen stand-in) at 10 fps."""

    def __init__(self, width: int = 1920, height: int = 1080):
        super().__init__()
        self.width, self.height = width, height

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        img = np.zeros((self.height, self.width, 3), np.uint8)
        x = (pts // 3000 * 40) % self.width
        img[:, x:x + 40] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = pts, time_base
        return frame


@dataclass
class Heard:
    """What the client received: 48 kHz mono frames with their arrival wall time."""

    frames: list[np.ndarray] = field(default_factory=list)
    at: list[float] = field(default_factory=list)

    def signal(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.int16)


class ClientPeer:
    def __init__(self, base_url: str, interview_id: str, source: WavTrack, *, token: str = "", credential: str = "",
                 camera: VideoStreamTrack | None = None, screen: VideoStreamTrack | None = None,
                 consent: dict[str, bool] | None = None):
        self.base_url, self.interview_id, self.source = base_url.rstrip("/"), interview_id, source
        self.token, self.credential = token, credential
        self.camera, self.screen, self.consent = camera, screen, consent or {}
        self.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.heard = Heard()
        self.events: list[dict[str, Any]] = []
        self.event_arrived = asyncio.Event()
        self.answer: dict[str, Any] = {}
        self.channel: Any = None
        self._tasks: list[asyncio.Task[Any]] = []

    @staticmethod
    def from_link(link: str, source: WavTrack, **kw: Any) -> "ClientPeer":
        """`PUBLIC_BASE_URL/i/<id>#token=<t>` -> a client for it."""
        url = urllib.parse.urlsplit(link)
        iid = urllib.parse.unquote(url.path.rstrip("/").rsplit("/", 1)[-1])
        token = urllib.parse.parse_qs(url.fragment).get("token", [""])[0]
        base = f"{url.scheme}://{url.netloc}{url.path.rsplit('/i/', 1)[0]}"
        return ClientPeer(base, iid, source, token=token, **kw)

    def offer_url(self) -> str:
        return f"{self.base_url}/i/{urllib.parse.quote(self.interview_id)}/offer"

    async def connect(self) -> dict[str, Any]:
        """POST the offer; returns the answer JSON, raises aiohttp.ClientResponseError-like RuntimeError."""
        self.pc.addTransceiver(self.source, direction="sendrecv")
        self.pc.addTransceiver(self.camera or "video", direction="sendonly")
        self.pc.addTransceiver(self.screen or "video", direction="sendonly")
        self.channel = self.pc.createDataChannel("events")
        self.channel.on("message", self._on_event)
        self.pc.on("track", self._on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        body = {"sdp": self.pc.localDescription.sdp, "type": "offer", "consent": self.consent,
                "client_info": "aiortc client"}
        body["credential" if self.credential else "token"] = self.credential or self.token
        status, reply = await post_json(self.offer_url(), body)
        if status != 200:
            await self.pc.close()
            raise OfferRefused(status, reply.get("error", ""))
        self.answer = reply
        await self.pc.setRemoteDescription(RTCSessionDescription(reply["sdp"], reply["type"]))
        return reply

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._tasks.append(asyncio.create_task(self._consume(track)))

    async def _consume(self, track: MediaStreamTrack) -> None:
        resampler: Resampler | None = None
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            data = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1).astype(np.int16)
            if frame.sample_rate != RATE:
                resampler = resampler or Resampler(frame.sample_rate, RATE)
                data = resampler.process(data)
            self.heard.frames.append(data)
            self.heard.at.append(time.time())

    def _on_event(self, raw: str) -> None:
        self.events.append(json.loads(raw))
        self.event_arrived.set()

    def send_event(self, **event: Any) -> None:
        self.channel.send(json.dumps(event))

    async def wait_connected(self, timeout: float = 5.0) -> float:
        t0 = time.monotonic()
        async with asyncio.timeout(timeout):
            while self.pc.iceConnectionState not in ("connected", "completed"):
                await asyncio.sleep(0.01)
        return time.monotonic() - t0

    async def hangup(self) -> int:
        status, _ = await post_json(f"{self.base_url}/i/{urllib.parse.quote(self.interview_id)}/hangup",
                                    {"peer_id": self.answer.get("peer_id", "")})
        await self.close()
        return status

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.pc.close()


class OfferRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


async def post_json(url: str, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        data = raw if raw is not None else json.dumps(body).encode()
        async with http.post(url, data=data, headers={"Content-Type": "application/json"}) as resp:
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, {"error": await resp.text()}
