"""The client side of the media benchmark: a worker process running some of the N candidate peers.

One Python process cannot run ten aiortc peers (an Opus encoder and decoder each) in real time on
these cores; a starved client hears late and makes every round trip look slow, media's or not.
So the driver (tests/load/media.py) spreads the peers over several of these workers, started with
the spawn method, and talks to each over a pipe:

    worker -> driver  ("connected", {"ok": n, "errors": [...]})   every peer joined (or failed)
    driver -> worker  ("window", start, end)                      the steady window, wall clock
    worker -> driver  ("result", {...})                           after `end`: round trips, counts

Round trips are measured from the audio itself: each heard speech window is cross-correlated with
what the peer sent, and the lag is the time between sending that audio and hearing it.
"""
from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import av
import numpy as np
from aiortc.codecs.opus import OpusEncoder
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from services.common.audio import resample
from services.media.client import FRAME, RATE, ClientPeer, OfferRefused
from services.media.gateway import restrict_ice_to_loopback
from services.media.peer import set_jitter_prefetch
from tests.load.harness import load_recordings

CORR_RATE = 8000     # cross-correlation runs at 8 kHz (speech band; media's uplink is 16 kHz anyway)
WINDOW_S = 0.2       # one latency sample per 200 ms of heard speech ...
STEP_S = 0.25        # ... every 250 ms
MAX_LAG_S = 1.0
MIN_CORR = 0.5       # normalised correlation a window needs to count as matched
SPEECH_RMS = 32768 * 10 ** (-40 / 20)  # -40 dBFS: louder windows are speech


@dataclass
class PeerSpec:
    index: int
    interview_id: str
    token: str


@dataclass
class WorkerSpec:
    url: str
    peers: list[PeerSpec]
    jitter_prefetch: int
    ramp_s: float = 0.0             # spread this worker's offers over this long
    connect_timeout_s: float = 15.0
    lead_s: float = field(default=0.0)  # start offset so workers do not offer in the same instant


def round_trips_ms(sent: np.ndarray, sent_at: Sequence[float], heard: Sequence[np.ndarray],
                   heard_at: Sequence[float], since: float, until: float) -> tuple[list[float], int]:
    """(latencies, unmatched windows): for heard speech windows inside [since, until), where in what
    was sent they best correlate, and how long after sending that audio arrived.

    A sample's send time is its frame's hand-over to the encoder plus its place in the frame; a heard
    window's time is the arrival of its first frame, so a zero-delay loop measures 0.
    """
    if not heard or not len(sent):
        return [], 0
    ratio = RATE // CORR_RATE
    sent_lo = resample(sent, RATE, CORR_RATE).astype(np.float64)
    frame_lo = FRAME // ratio
    sent_at_arr = np.asarray(sent_at)
    win_frames = int(WINDOW_S * RATE / FRAME)
    step = max(1, int(STEP_S * RATE / FRAME))
    out: list[float] = []
    unmatched = 0
    for k in range(0, len(heard) - win_frames, step):
        t_r = heard_at[k]
        if t_r < since or t_r >= until:
            continue
        win = np.concatenate(heard[k:k + win_frames]).astype(np.float64)
        if np.sqrt(np.mean(win ** 2)) < SPEECH_RMS:
            continue
        win = resample(win.astype(np.int16), RATE, CORR_RATE).astype(np.float64)
        first = int(np.searchsorted(sent_at_arr, t_r - MAX_LAG_S))
        last = int(np.searchsorted(sent_at_arr, t_r))
        seg = sent_lo[first * frame_lo:last * frame_lo + len(win)]
        if len(seg) < 2 * len(win):
            continue
        n = 1 << int(np.ceil(np.log2(len(seg) + len(win))))
        corr = np.fft.irfft(np.fft.rfft(seg, n) * np.conj(np.fft.rfft(win, n)), n)[:len(seg) - len(win) + 1]
        energy = np.sqrt(np.convolve(seg ** 2, np.ones(len(win)), "valid")) * np.sqrt(np.sum(win ** 2))
        score = corr / np.maximum(energy, 1e-9)
        best = int(np.argmax(score))
        if score[best] < MIN_CORR:
            unmatched += 1
            continue
        j = first * frame_lo + best  # index into sent at CORR_RATE
        sent_time = sent_at_arr[j // frame_lo] + (j % frame_lo) / CORR_RATE
        out.append(1000 * (t_r - sent_time))
    return out, unmatched


class PreEncodedTrack(MediaStreamTrack):
    """A looped recording sent as Opus packets encoded once per worker, paced like WavTrack.

    The peers' own Opus encoding was ~1.4 % of a core per client peer; the clients share the two
    cores with what they measure, so they skip it. The packets are what aiortc's own encoder
    makes of the same audio, so media receives exactly what a live encoder would send.
    """

    kind = "audio"

    def __init__(self, loop_pcm: np.ndarray, packets: list[bytes], start_frame: int):
        super().__init__()
        self.loop_pcm, self.packets, self.start = loop_pcm, packets, start_frame
        self.sent_at: list[float] = []  # wall time each packet was handed to the sender
        self._t0: float | None = None

    @staticmethod
    def encode(pcm: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        """(the loop, padded to whole 20 ms frames; one Opus packet per frame of it)."""
        pcm = np.concatenate([pcm, np.zeros(-len(pcm) % FRAME, np.int16)])
        enc, packets = OpusEncoder(), []
        for i in range(0, len(pcm), FRAME):
            frame = av.AudioFrame.from_ndarray(np.repeat(pcm[i:i + FRAME], 2).reshape(1, -1), format="s16",
                                               layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = RATE, i, fractions.Fraction(1, RATE)
            packets += enc.encode(frame)[0]
        packets += packets[:len(pcm) // FRAME - len(packets)]  # the encoder's look-ahead: wrap around
        return pcm, packets

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        k = len(self.sent_at)
        if self._t0 is None:
            self._t0 = time.monotonic()
        wait = self._t0 + k * FRAME / RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        packet = av.Packet(self.packets[(self.start + k) % len(self.packets)])
        packet.pts, packet.time_base = k * FRAME, fractions.Fraction(1, RATE)
        self.sent_at.append(time.time())
        return packet

    def sent_signal(self) -> np.ndarray:
        """What has been sent so far, at 48 kHz mono (sample i of frame k at sent_at[k])."""
        rolled = np.roll(self.loop_pcm, -self.start * FRAME)
        return np.resize(rolled, len(self.sent_at) * FRAME)


class Worker:
    """This process's peers: join, hold through the driver's window, hang up, analyse."""

    def __init__(self, spec: WorkerSpec, conn: Connection):
        self.spec, self.conn = spec, conn
        self.clients: list[ClientPeer] = []
        self.errors: list[str] = []

    async def _join(self, peer: PeerSpec, delay: float, encoded: list[tuple[np.ndarray, list[bytes]]]) -> None:
        await asyncio.sleep(delay)
        pcm, packets = encoded[peer.index % len(encoded)]
        start = int(peer.index * 7.3 * RATE / FRAME) % len(packets)  # every peer at another place in it
        client = ClientPeer(self.spec.url, peer.interview_id, PreEncodedTrack(pcm, packets, start),  # type: ignore[arg-type]
                            token=peer.token)
        try:
            await client.connect()
            for t in client.pc.getTransceivers():
                if t.kind == "audio":
                    set_jitter_prefetch(t, self.spec.jitter_prefetch)
            self.clients.append(client)
            await client.wait_connected(self.spec.connect_timeout_s)
        except (OfferRefused, TimeoutError, OSError) as exc:
            self.errors.append(f"peer {peer.index}: {type(exc).__name__}: {exc}")

    async def _recv(self) -> Any:
        while not await asyncio.to_thread(self.conn.poll, 0.2):
            pass
        return self.conn.recv()

    async def run(self) -> None:
        restrict_ice_to_loopback()  # this host may be loopback-only
        n = len(self.spec.peers)
        encoded = [PreEncodedTrack.encode(rec.samples) for rec in load_recordings(RATE)]
        await asyncio.gather(*(self._join(p, self.spec.lead_s + self.spec.ramp_s * i / max(1, n), encoded)
                               for i, p in enumerate(self.spec.peers)))
        self.conn.send(("connected", {"ok": n - len(self.errors), "errors": self.errors}))
        try:
            _, since, until = await self._recv()
            await asyncio.sleep(max(0.0, until - time.time()))
            await self._hang_up()
            self.conn.send(("result", await asyncio.to_thread(self._analyse, since, until)))
        finally:
            await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

    async def _hang_up(self) -> None:
        for c in self.clients:
            if c.channel is not None and c.channel.readyState == "open":
                c.send_event(type="hangup")  # reaches the process that holds the peer (SO_REUSEPORT)
        await asyncio.gather(*(c.close() for c in self.clients), return_exceptions=True)

    def _analyse(self, since: float, until: float) -> dict[str, Any]:
        rtts: list[float] = []
        unmatched = sent = heard = 0
        for c in self.clients:
            src = c.source
            lat, bad = round_trips_ms(src.sent_signal(), src.sent_at, c.heard.frames, c.heard.at, since, until)
            rtts += lat
            unmatched += bad
            sent += sum(1 for t in src.sent_at if since <= t < until)
            heard += sum(1 for t in c.heard.at if since <= t < until)
        return {"rtt_ms": rtts, "unmatched": unmatched, "frames_sent": sent, "frames_heard": heard,
                "errors": self.errors}


def worker_main(spec: WorkerSpec, conn: Connection) -> None:
    """Entry point of one spawned worker process."""
    with contextlib.suppress(KeyboardInterrupt, EOFError, BrokenPipeError):
        asyncio.run(Worker(spec, conn).run())
