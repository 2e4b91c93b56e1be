"""Agent audio out: TTS PCM (any rate) -> 48 kHz mono -> paced 20 ms Opus packets, silence when idle.

Two-stage barge-in lives here: PAUSE holds playback and keeps the queue, RESUME continues where it
stopped, CLEAR drops everything queued of a generation at once and remembers the id, so chunks of
it that arrive later (already in flight from TTS) are discarded on arrival. Playback marks say how
much of each generation was actually played (at the generation's own sample rate), which is what
the orchestrator puts into the history. Live agent captions follow what plays: a piece's text is
captioned when its audio starts (the orchestrator's own caption comes once the turn is over).
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from interview.v1 import session_pb2
from services.common import metrics, telemetry
from services.common.audio import Resampler, pcm_to_int16
from services.media.opus_out import FRAME, RATE as OUT_RATE, OpusOut

log = logging.getLogger("media.playback")

MARK_EVERY = OUT_RATE // 2  # a progress mark every 0.5 s of played audio
_CLEARED_MEMORY = 256


@dataclass
class _Generation:
    gen_id: str
    rate: int
    resampler: Resampler
    played: int = 0      # 48 kHz samples played
    queued: int = 0      # 48 kHz samples still queued
    last_seen: bool = False
    next_mark: int = MARK_EVERY
    caption: str = ""       # the text of the pieces whose audio has started playing
    unqueued_text: str = ""  # text of chunks that gave no samples yet (resampler delay)
    span: Any = None  # 'media.playback_start' in the turn's trace: first chunk received -> first sample played

    def end_span(self, started: bool) -> None:
        if self.span is not None:
            self.span.set_attribute("played", started)
            self.span.end()
            self.span = None

    def played_at_own_rate(self) -> int:
        return int(round(self.played * self.rate / OUT_RATE))


class Playback:
    """Queue + state machine of agent audio for one peer. Not thread-safe: event loop only."""

    def __init__(self, max_seconds: float, on_mark: Callable[[session_pb2.PlaybackMark], None],
                 on_speaking: Callable[[bool], None] = lambda _s: None,
                 input_offset: Callable[[], int] = lambda: 0,
                 on_caption: Callable[[str, str, bool], None] = lambda _g, _t, _f: None):
        """`on_caption(generation_id, text so far, final)`: live agent captions, in step with what
        plays (a piece's text when its audio starts), final when the generation is cleared."""
        self.max_samples = int(max_seconds * OUT_RATE)
        self._on_mark, self._on_speaking, self._input_offset = on_mark, on_speaking, input_offset
        self._on_caption = on_caption
        self._queue: deque[tuple[_Generation, np.ndarray, str]] = deque()  # (generation, samples, text starting here)
        self._final_captions: OrderedDict[str, None] = OrderedDict()  # the orchestrator's own final caption came
        self._queued = 0
        self._gens: dict[str, _Generation] = {}
        self._cleared: OrderedDict[str, None] = OrderedDict()
        self.paused = False
        self.speaking = False
        self.dropped_chunks = 0  # over the buffer cap
        self.discarded_chunks = 0  # of cleared generations

    @property
    def queued_seconds(self) -> float:
        return self._queued / OUT_RATE

    def add(self, audio: session_pb2.AgentAudio) -> None:
        """Queue one chunk; raises ValueError on a malformed chunk (odd bytes, bad rate)."""
        gid = audio.generation_id
        if gid in self._cleared:
            self.discarded_chunks += 1
            metrics.MEDIA_DROPPED_FRAMES.labels("agent_audio_cleared").inc()
            return
        gen = self._gens.get(gid)
        if gen is None:
            rate = audio.sample_rate_hz or 24000
            if not 8000 <= rate <= 96000:
                raise ValueError(f"agent audio sample rate {rate} Hz is outside 8000..96000")
            gen = self._gens[gid] = _Generation(gid, rate, Resampler(rate, OUT_RATE))
            if audio.chunk.trace.traceparent:
                gen.span = telemetry.start_child(audio.chunk.trace, "media.playback_start", generation_id=gid)
        samples = gen.resampler.process(pcm_to_int16(audio.chunk.pcm), last=audio.last)
        if audio.text.strip():
            gen.unqueued_text = f"{gen.unqueued_text} {audio.text.strip()}".strip()
        if audio.last:
            gen.last_seen = True
        if self._queued + len(samples) > self.max_samples:
            self.dropped_chunks += 1
            metrics.MEDIA_DROPPED_FRAMES.labels("agent_audio_buffer_full").inc()
            log.warning("playback buffer full: agent audio dropped",
                        extra={"generation_id": gid, "queued_s": round(self.queued_seconds, 2)})
            return
        if len(samples):
            self._queue.append((gen, samples, gen.unqueued_text))
            gen.unqueued_text = ""
            self._queued += len(samples)
            gen.queued += len(samples)
        elif gen.last_seen and gen.queued == 0:
            self._finish(gen)

    def control(self, ctl: session_pb2.PlaybackControl) -> None:
        log.info("playback control", extra={"action": session_pb2.PlaybackAction.Name(ctl.action),
                                            "generation_id": ctl.generation_id, "queued_s": round(self.queued_seconds, 2)})
        if ctl.action == session_pb2.PLAYBACK_PAUSE:
            if not self.paused:
                self.paused = True
                self._mark_current()
                self._set_speaking(False)
        elif ctl.action == session_pb2.PLAYBACK_RESUME:
            self.paused = False
        elif ctl.action == session_pb2.PLAYBACK_CLEAR:
            self.clear(ctl.generation_id)

    def clear(self, gen_id: str = "") -> None:
        """Drop a generation (all of them when gen_id is empty) now and whatever of it arrives later."""
        victims = [g for g in self._gens.values() if not gen_id or g.gen_id == gen_id]
        if gen_id and not victims:
            self._remember_cleared(gen_id)
        ids = {g.gen_id for g in victims}
        kept = deque(item for item in self._queue if item[0].gen_id not in ids)
        self._queued = sum(len(item[1]) for item in kept)
        self._queue = kept
        for g in victims:
            g.end_span(started=False)
            self._emit(g, finished=False)
            if g.caption and g.gen_id not in self._final_captions:
                self._on_caption(g.gen_id, g.caption, True)  # what was heard of it, final
            self._remember_cleared(g.gen_id)
            del self._gens[g.gen_id]
        self.paused = False
        self._set_speaking(False)

    def final_caption(self, gen_id: str) -> None:
        """The orchestrator captioned this generation itself (final): no live captions for it."""
        _remember(self._final_captions, gen_id)

    def _caption(self, gen: _Generation, text: str) -> None:
        gen.caption = f"{gen.caption} {text}".strip()
        if gen.gen_id not in self._final_captions:
            self._on_caption(gen.gen_id, gen.caption, False)

    def _remember_cleared(self, gen_id: str) -> None:
        _remember(self._cleared, gen_id)

    def next_frame(self) -> np.ndarray:
        """The next 20 ms of mono 48 kHz audio: queued agent audio, or silence."""
        out = np.zeros(FRAME, dtype=np.int16)
        if self.paused or not self._queue:
            self._set_speaking(False)
            return out
        filled = 0
        while filled < FRAME and self._queue:
            gen, samples, text = self._queue[0]
            gen.end_span(started=True)
            if text:
                self._caption(gen, text)
            take = min(FRAME - filled, len(samples))
            out[filled:filled + take] = samples[:take]
            filled += take
            gen.played += take
            gen.queued -= take
            self._queued -= take
            if take == len(samples):
                self._queue.popleft()
            else:
                self._queue[0] = (gen, samples[take:], "")
            if gen.played >= gen.next_mark:
                gen.next_mark += MARK_EVERY
                self._emit(gen, finished=False)
            if gen.queued == 0 and gen.last_seen:
                self._finish(gen)
        self._set_speaking(True)
        return out

    def _finish(self, gen: _Generation) -> None:
        gen.end_span(started=gen.played > 0)
        self._emit(gen, finished=True)
        self._gens.pop(gen.gen_id, None)

    def _mark_current(self) -> None:
        if self._queue:
            self._emit(self._queue[0][0], finished=False)

    def _emit(self, gen: _Generation, finished: bool) -> None:
        self._on_mark(session_pb2.PlaybackMark(generation_id=gen.gen_id, samples_played=gen.played_at_own_rate(),
                                               finished=finished, input_offset_samples=self._input_offset()))

    def _set_speaking(self, speaking: bool) -> None:
        if speaking != self.speaking:
            self.speaking = speaking
            self._on_speaking(speaking)


def _remember(ids: OrderedDict[str, None], gen_id: str) -> None:
    """Remember an id among the last _CLEARED_MEMORY."""
    ids[gen_id] = None
    while len(ids) > _CLEARED_MEMORY:
        ids.popitem(last=False)


class AgentAudioTrack(MediaStreamTrack):
    """The outbound WebRTC audio track: one 20 ms Opus packet per recv() (encoded here, see
    opus_out), paced on the wall clock."""

    kind = "audio"

    def __init__(self, playback: Playback, bitrate: int = 32000):
        super().__init__()
        self.playback = playback
        self.encoder = OpusOut(bitrate)
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += FRAME
            wait = self._start + self._pts / OUT_RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -0.2:  # the loop stalled: restart the clock instead of bursting to catch up
                self._start = time.monotonic() - self._pts / OUT_RATE
        return self.encoder.packet(self.playback.next_frame(), self._pts)
