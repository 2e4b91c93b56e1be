"""What goes down to media, with the two rules barge-in needs.

- Control messages (playback actions, captions, state, end) overtake queued audio: a PAUSE must
  not wait behind seconds of already synthesised speech.
- Audio of a cleared generation is dropped at the last moment (when dequeued), so a chunk queued
  before the CLEAR, or produced late by a TTS call still being cancelled, never reaches media.

Audio is bounded (back-pressure on the TTS reader when media reads slowly); control is small.
"""
from __future__ import annotations

import asyncio
from collections import deque

from interview.v1 import session_pb2


class Outbound:
    def __init__(self, max_audio: int = 512):
        self._audio: asyncio.Queue[session_pb2.ServerMessage] = asyncio.Queue(maxsize=max_audio)
        self._control: deque[session_pb2.ServerMessage] = deque()
        self._wake = asyncio.Event()
        self.cleared: set[str] = set()
        self.dropped_stale = 0
        self.closed = False

    def control(self, msg: session_pb2.ServerMessage) -> None:
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
