"""Agent audio -> Opus packets, encoded by media itself instead of by aiortc.

aiortc encodes every outgoing 20 ms frame in its default thread pool (a submit, a thread wake and
a call_soon_threadsafe back per frame, costing more than the ~0.2 ms of encoding), as 96 kb/s
stereo after a per-peer resampler that starts two threads. A track that returns `av.Packet`s is
sent as is (aiortc's "pre-encoded" path), so this encodes inline on the event loop: mono (the
voice is mono; Opus packets say so and browsers decode them on the stereo-signalled payload type)
at a speech bitrate.

Most of an interview the agent is quiet, and every quiet frame still has to be sent (aiortc cannot
send RTP timestamp gaps, i.e. DTX). After `WARM_SILENT_FRAMES` of digital silence the encoder has
settled on a silence packet; that packet is repeated without encoding until sound returns, so the
encoder's state (it last saw silence) matches what the browser decoded. The RFC 6465 audio-level
header extension is not sent on this path (browsers measure what they decode; only SFUs use it).
"""
from __future__ import annotations

import fractions

import av
import numpy as np

RATE = 48000
FRAME = 960  # 20 ms: one Opus packet per frame
TIME_BASE = fractions.Fraction(1, RATE)
WARM_SILENT_FRAMES = 10


class OpusOut:
    def __init__(self, bitrate: int = 32000):
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.bit_rate = bitrate
        self._codec.format = "s16"
        self._codec.layout = "mono"
        self._codec.sample_rate = RATE
        self._codec.time_base = TIME_BASE
        self._codec.options = {"application": "voip"}
        self._silent_run = 0
        self._silence: bytes | None = None
        self.encoded = 0  # frames that went through the encoder (the rest were repeated silence)

    def packet(self, mono: np.ndarray, pts: int) -> av.Packet:
        """One 20 ms frame (960 int16 samples at 48 kHz) -> its Opus packet stamped `pts`."""
        silent = not mono.any()
        self._silent_run = self._silent_run + 1 if silent else 0
        if silent and self._silence is not None and self._silent_run > WARM_SILENT_FRAMES:
            payload = self._silence
        else:
            payload = self._encode(mono, pts)
            if silent and self._silent_run == WARM_SILENT_FRAMES:
                self._silence = payload
        packet = av.Packet(payload)
        packet.pts = pts
        packet.time_base = TIME_BASE
        return packet

    def _encode(self, mono: np.ndarray, pts: int) -> bytes:
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = pts
        self.encoded += 1
        return b"".join(bytes(p) for p in self._codec.encode(frame))  # libopus: one packet per 20 ms frame
