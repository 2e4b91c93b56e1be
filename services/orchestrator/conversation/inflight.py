"""The in-flight marker: a crash never silently drops a turn.

The session keeps `P i:ID:inflight` (store.set_inflight) equal to what its transcript would get if
it were cut off now: entries still in the outbox, transcribed words not yet answered, the
utterance in progress (its latest interim text, incomplete) and the agent turn being heard
(incomplete). Each entry carries the entry_id its normal write uses. The next owner, on any
instance, writes them at join (store.close_inflight) before its own session starts; entries
that did get written are skipped by id, so nothing is written twice.

Writes are coalesced: one in flight at a time, at most every `min_interval_s`, only when the
content changed (a session kicks the marker on every state change; a slow periodic refresh
catches playback progress without marks).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from interview.v1 import interviews_pb2
from services.common.tasks import raise_if_cancelling
from services.orchestrator.store.store import TRANSIENT, InterviewStore

log = logging.getLogger("conversation.inflight")


class InflightMarker:
    def __init__(self, store: InterviewStore, iid: str, epoch: int,
                 snapshot: Callable[[], list[interviews_pb2.TranscriptEntry]],
                 min_interval_s: float = 0.2, refresh_s: float = 1.0):
        self.store, self.iid, self.epoch = store, iid, epoch
        self.snapshot = snapshot
        self.min_interval_s = min_interval_s
        self.refresh_s = refresh_s
        self._kick = asyncio.Event()
        self._written = b""
        self.writes = 0

    def kick(self) -> None:
        """Something the marker covers changed: write the new content soon."""
        self._kick.set()

    async def run(self) -> None:
        """Owned by the session; raises store.Fenced when another owner took over.

        A cancellation can be swallowed inside a Redis call (redis-py turns a cancelled read into a
        connection error, and TRANSIENT covers OSError/TimeoutError); from then on each
        asyncio.timeout would turn the pending cancel into a TimeoutError and the loop would never
        end, so the session's shutdown would wait forever. Hence the explicit checks."""
        while True:
            raise_if_cancelling()
            try:
                # asyncio.timeout, not wait_for: in Python 3.11 wait_for can swallow a cancellation that
                # arrives as the inner wait completes (CPython gh-86296), and this loop would never end.
                async with asyncio.timeout(self.refresh_s):
                    await self._kick.wait()
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            await self.write()
            raise_if_cancelling()
            await asyncio.sleep(self.min_interval_s)

    async def write(self) -> bool:
        """Write the current content if it changed; False when Redis is unreachable (retried later)."""
        entries = self.snapshot()
        data = interviews_pb2.GetTranscriptResponse(entries=entries).SerializeToString() if entries else b""
        if data == self._written:
            return True
        try:
            await self.store.set_inflight(self.iid, self.epoch, entries)
        except TRANSIENT as exc:
            raise_if_cancelling()
            log.warning("in-flight marker not written; retrying", extra={"error": str(exc)[:200]})
            self._kick.set()
            return False
        self._written = data
        self.writes += 1
        return True
