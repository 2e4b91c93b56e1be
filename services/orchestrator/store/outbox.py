"""Transcript entries are never fire-and-forget: a bounded, ordered outbox in front of the store.

`put` enqueues (waiting when the outbox is full: back-pressure, not loss); one flusher task
writes entries strictly in order. While Redis is unreachable the head entry is retried with
backoff and everything behind it waits; when Redis returns they flush in order. Retries are safe
because each entry carries an entry_id and the store's script is idempotent by it.
"""
from __future__ import annotations

import asyncio
import logging

from interview.v1 import interviews_pb2
from services.common import metrics
from services.common.retry import Backoff
from services.common.tasks import OwnedTask, raise_if_cancelling
from services.orchestrator.store.store import TRANSIENT, Appended, InterviewStore, StoreError

log = logging.getLogger("outbox")


class TranscriptOutbox:
    def __init__(self, store: InterviewStore, size: int = 1000, *, epoch: int | None = None,
                 backoff: Backoff = Backoff(initial_s=0.05, factor=2.0, cap_s=2.0, attempts=1_000_000)):
        self.store = store
        self.epoch = epoch
        self.backoff = backoff
        self._queue: asyncio.Queue[tuple[interviews_pb2.TranscriptEntry, asyncio.Future[Appended]]] = \
            asyncio.Queue(maxsize=size)
        self._task = OwnedTask(self._flush, "transcript-outbox")
        self._current: tuple[interviews_pb2.TranscriptEntry, asyncio.Future[Appended]] | None = None
        self.retries = 0

    def start(self) -> "TranscriptOutbox":
        self._task.start()
        return self

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def put(self, entry: interviews_pb2.TranscriptEntry) -> asyncio.Future[Appended]:
        """Enqueue `entry` (waits while the outbox is full). The returned future resolves to the
        entry's sequence once written, or to a StoreError (unknown interview, fenced owner)."""
        if not entry.entry_id:
            raise ValueError("a transcript entry needs an entry_id (its idempotency key)")
        done: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        done.add_done_callback(lambda f: f.cancelled() or f.exception())  # failures are logged, not lost
        await self._queue.put((entry, done))
        metrics.OUTBOX_DEPTH.inc()
        return done

    async def drain(self) -> None:
        """Wait until every entry put so far is written (or has failed permanently)."""
        await self._queue.join()

    async def close(self) -> list[interviews_pb2.TranscriptEntry]:
        """Stop the flusher; returns the entries not written, in order (the one being retried
        first), each also reported as not written to whoever waits for it (the session spills them)."""
        await self._task.stop()
        left = [self._current] if self._current is not None else []
        if self._current is not None:
            self._current = None
            self._taken()
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
            self._taken()
        for entry, done in left:
            if not done.done():
                done.set_exception(StoreError(f"outbox closed before entry {entry.entry_id} was written"))
        return [entry for entry, _ in left]

    async def _flush(self) -> None:
        while True:
            entry, done = self._current = await self._queue.get()
            try:  # a cancellation (close) leaves _current set: close() reports it as not written
                result = await self._write(entry)
                if not done.done():
                    done.set_result(result)
            except StoreError as exc:
                log.error("transcript entry refused", extra={"interview_id": entry.interview_id, "error": str(exc)})
                if not done.done():
                    done.set_exception(exc)
            self._current = None
            self._taken()

    def _taken(self) -> None:
        self._queue.task_done()
        metrics.OUTBOX_DEPTH.dec()

    async def _write(self, entry: interviews_pb2.TranscriptEntry) -> Appended:
        delays = self.backoff.delays()
        while True:
            try:
                return await self.store.append_transcript(entry, epoch=self.epoch)
            except TRANSIENT as exc:
                raise_if_cancelling()
                self.retries += 1
                delay = next(delays, self.backoff.cap_s)
                log.warning("store unreachable; transcript entries wait in the outbox",
                            extra={"pending": self._queue.qsize() + 1, "retry_in_s": round(delay, 2), "error": str(exc)})
                await asyncio.sleep(delay)
