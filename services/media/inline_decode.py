"""Decode a peer's incoming Opus on the event loop instead of in aiortc's per-receiver thread.

aiortc hands every received 20 ms audio frame to a decoder thread (a queue.Queue put that wakes
it) and gets the decoded frame back through run_coroutine_threadsafe (a self-pipe write that
wakes the loop): per frame, that costs more than decoding it (~0.05 ms of libopus).

`decode_on_loop(receiver)` swaps that machinery for a direct decode, right after aiortc starts
the receiver (before any packet can be handled): the new object takes the place of the thread's
queue, and its `put` decodes and queues the frames for the track itself. The thread stays
blocked on its old queue until the receiver stops; then it is handed the stop, so it ends the
track and exits as before (the track may already be read by then: its queue stays the same).
It relies on aiortc 1.16's private attribute names (pinned in pyproject); on any other shape it
changes nothing and aiortc's thread keeps decoding.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

import av
from aiortc.codecs import get_decoder

log = logging.getLogger("media.inline_decode")

_P = "_RTCRtpReceiver__"


class _LoopDecoder:
    """Stands in for the receiver's decoder queue: what aiortc `put`s is decoded at once."""

    def __init__(self, out: asyncio.Queue, decode_error: threading.Event, thread_q: queue.Queue):
        self._out, self._error, self._thread_q = out, decode_error, thread_q
        self._codec_name: str | None = None
        self._decoder: Any = None
        self.decoded = 0

    def put(self, task: Any) -> None:
        if task is None:  # the receiver stops: the idle thread ends the track and exits
            self._thread_q.put(None)
            return
        codec, encoded = task
        if codec.name != self._codec_name:
            self._decoder, self._codec_name = get_decoder(codec), codec.name
        try:
            frames = self._decoder.decode(encoded)
        except av.FFmpegError as exc:  # keep the decoder's state, as aiortc's worker does
            log.warning("undecodable audio frame dropped", extra={"error": str(exc)})
            self._error.set()
            return
        self.decoded += 1
        for frame in frames:
            self._out.put_nowait(frame)


def decode_on_loop(receiver: Any) -> None:
    """Arrange for `receiver`'s audio to be decoded on the loop once aiortc starts it."""
    start = receiver.receive

    async def receive(parameters: Any) -> None:
        await start(parameters)  # starts the thread and registers the receiver; does not yield
        _swap(receiver)

    receiver.receive = receive


def _swap(receiver: Any) -> bool:
    if isinstance(getattr(receiver, _P + "decoder_queue", None), _LoopDecoder):
        return True  # a renegotiation calls receive() again: already swapped
    track = receiver.track
    thread_q, thread = getattr(receiver, _P + "decoder_queue", None), getattr(receiver, _P + "decoder_thread", None)
    error = getattr(receiver, _P + "decoder_error", None)
    track_q = getattr(track, "_queue", None)
    if not (isinstance(thread_q, queue.Queue) and isinstance(thread, threading.Thread) and thread.is_alive()
            and isinstance(error, threading.Event) and isinstance(track_q, asyncio.Queue)):
        log.warning("aiortc's receiver is not as expected: audio stays decoded in its thread")
        return False
    setattr(receiver, _P + "decoder_queue", _LoopDecoder(track_q, error, thread_q))
    return True
