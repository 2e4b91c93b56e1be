"""What goes down to media, with the two rules barge-in needs.

- Control messages (playback actions, captions, state, end) overtake queued audio: a PAUSE must
  not wait behind seconds of already synthesised speech.
- Audio of a cleared generation is dropped at the last moment (when dequeued), so a chunk queued
  before the CLEAR, or produced late by a TTS call still being cancelled, never reaches media.

Audio is bounded (back-pressure on the TTS reader when media reads slowly). Control is bounded
too (`max_control`): media that stops reading must not grow it without end. When full, the
oldest superseded message (an interim caption, a state) makes room; if there is none, the oldest
message is dropped, counted and logged as an error.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque

from interview.v1 import session_pb2


log = logging.getLogger("conversation.outbound")


def _superseded(msg: session_pb2.ServerMessage) -> bool:
    """A message a later one replaces: an interim caption, a state snapshot."""
    kind = msg.WhichOneof("msg")
    return kind == "state" or (kind == "caption" and not msg.caption.is_final)


class Outbound:
    def __init__(self, max_audio: int = 512, max_control: int = 1024):
        self._audio: asyncio.Queue[session_pb2.ServerMessage] = asyncio.Queue(maxsize=max_audio)
        self._control: deque[session_pb2.ServerMessage] = deque()
        self.max_control = max_control
        self.dropped_control = 0
        self._wake = asyncio.Event()
        self.cleared: set[str] = set()
        self.dropped_stale = 0
        self.closed = False

    def control(self, msg: session_pb2.ServerMessage) -> None:
        if len(self._control) >= self.max_control:
            victim = next((m for m in self._control if _superseded(m)), None)
            if victim is not None:
                self._control.remove(victim)
            else:
                self._control.popleft()
                self.dropped_control += 1
                log.error("media is not reading: a control message was dropped",
                          extra={"queued": len(self._control), "dropped": self.dropped_control})
        self._control.append(msg)
        self._wake.set()

    async def audio(self, msg: session_pb2.ServerMessage) -> bool:
        """Queue a chunk (waits while media is behind); False if its generation was cleared."""
        if msg.audio.generation_id in self.cleared:
            self.dropped_stale += 1
            return False
        await self._audio.put(msg)
        self._wake.set()
        return True

    def clear(self, generation_id: str) -> None:
        self.cleared.add(generation_id)
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def get(self) -> session_pb2.ServerMessage | None:
        """The next message for media; None once closed and the control queue is empty."""
        while True:
            if self._control:
                return self._control.popleft()
            while not self._audio.empty():
                msg = self._audio.get_nowait()
                if msg.audio.generation_id in self.cleared:
                    self.dropped_stale += 1
                    continue
                return msg
            if self.closed:
                return None
            self._wake.clear()
            await self._wake.wait()
