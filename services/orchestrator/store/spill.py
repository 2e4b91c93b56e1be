"""Transcript entries the outbox could not write before its session ended (Redis down) go to a
local append-only file instead of being dropped, and are replayed into Redis in order.

Format: records of a 4-byte big-endian length + one serialized TranscriptEntry. Each append is
one write + fsync on a file opened 0600 (O_APPEND), so a crash loses at most a torn last record,
which the reader ignores. The file is bounded (`max_bytes`): what does not fit is logged as an
error and counted (`overflowed`, metric interviewer_transcript_spill_lost), never silently dropped. Replay (at start-up and every
`retry_s` while the file has records) writes each entry unfenced through the store's idempotent
append (entry ids: a record written twice is stored once), skips interviews deleted meanwhile,
stops at the first transient error and keeps the rest for the next try. DeleteInterview purges
the interview's records from this instance's file (other instances skip them at replay).

The path must be on a writable volume (a read-only root filesystem is fine: mount one there). If
it cannot be opened the orchestrator still starts: spilling is disabled with an error log.
"""
from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import struct
from pathlib import Path

from interview.v1 import interviews_pb2
from services.common.metrics import TRANSCRIPT_SPILL_LOST, TRANSCRIPT_SPILL_REPLAYED, TRANSCRIPT_SPILLED
from services.common.tasks import OwnedTask, raise_if_cancelling
from services.orchestrator.store.store import TRANSIENT, InterviewStore, NotFound

log = logging.getLogger("store.spill")
_LEN = struct.Struct(">I")


class SpillFile:
    def __init__(self, path: str | Path, max_bytes: int = 64 * 1024 * 1024):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.enabled = True
        self.overflowed = 0
        self.replayed = 0
        self._lock = asyncio.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
            os.chmod(self.path, 0o600)
        except OSError as exc:
            self.enabled = False
            log.error("the transcript spill file cannot be opened: entries that cannot reach Redis at session end "
                      "will be lost; mount a writable volume at its directory", extra={
                          "path": str(self.path), "error": exc.strerror or str(exc)})

    # ---- file operations (run in a thread: fsync blocks) ----

    def _lock_file(self) -> int:
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        return fd

    @contextlib.contextmanager
    def _flock(self):  # type: ignore[no-untyped-def]
        """Instances that share the file (same host and path) take turns."""
        fd = self._lock_file()
        try:
            yield
        finally:
            os.close(fd)

    def _read(self) -> list[interviews_pb2.TranscriptEntry]:
        data = self.path.read_bytes() if self.path.exists() else b""
        out, pos = [], 0
        while pos + _LEN.size <= len(data):
            (n,) = _LEN.unpack_from(data, pos)
            if pos + _LEN.size + n > len(data):
                log.warning("torn last record in the spill file ignored", extra={"path": str(self.path)})
                break
            out.append(interviews_pb2.TranscriptEntry.FromString(data[pos + _LEN.size: pos + _LEN.size + n]))
            pos += _LEN.size + n
        return out

    def _append(self, records: bytes) -> None:
        with self._flock():
            self._append_locked(records)

    def _append_locked(self, records: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, records)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _rewrite(self, entries: list[interviews_pb2.TranscriptEntry]) -> None:
        """Replace the file atomically (write a temporary file, fsync, rename, fsync the directory)."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, b"".join(_record(e) for e in entries))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    # ---- the API ----

    async def append(self, entries: list[interviews_pb2.TranscriptEntry]) -> int:
        """Append in order what fits; returns how many were kept. The rest is an error, counted."""
        if not entries:
            return 0
        async with self._lock:
            size = self.path.stat().st_size if self.enabled and self.path.exists() else 0
            records, kept = [], 0
            for entry in entries:
                rec = _record(entry)
                if not self.enabled or size + len(rec) > self.max_bytes:
                    break
                records.append(rec)
                size += len(rec)
                kept += 1
            if records:
                await asyncio.to_thread(self._append, b"".join(records))
            lost = entries[kept:]
            if lost:
                self.overflowed += len(lost)
                TRANSCRIPT_SPILL_LOST.inc(len(lost))
                log.error("transcript entries LOST: Redis is unreachable and the spill file is full or unusable",
                          extra={"path": str(self.path), "max_bytes": self.max_bytes, "lost": len(lost),
                                 "entries": [f"{e.interview_id}/{e.entry_id}" for e in lost][:50]})
            if kept:
                TRANSCRIPT_SPILLED.inc(kept)
                log.warning("transcript entries spilled to the local file; replayed when Redis returns",
                            extra={"path": str(self.path), "entries": kept})
            return kept

    async def pending(self) -> int:
        if not self.enabled:
            return 0
        async with self._lock:
            return len(await asyncio.to_thread(self._read))

    async def purge(self, iid: str) -> int:
        """Drop an interview's records (it was deleted); returns how many."""
        if not self.enabled:
            return 0

        def purge() -> int:
            with self._flock():
                entries = self._read()
                keep = [e for e in entries if e.interview_id != iid]
                if len(keep) != len(entries):
                    self._rewrite(keep)
                return len(entries) - len(keep)
        async with self._lock:
            return await asyncio.to_thread(purge)

    async def replay(self, store: InterviewStore) -> int:
        """Write the records into Redis in order; returns how many were written (or found written).
        Stops at a transient error, keeping what is left for the next try."""
        if not self.enabled:
            return 0
        async with self._lock:
            if not self.path.exists() or self.path.stat().st_size == 0:
                return 0
            lock_fd = await asyncio.to_thread(self._lock_file)
            try:
                return await self._replay_locked(store)
            finally:
                os.close(lock_fd)

    async def _replay_locked(self, store: InterviewStore) -> int:
        entries = await asyncio.to_thread(self._read)
        if not entries:
            return 0
        done, skipped = 0, 0
        try:
            for entry in entries:
                try:
                    await store.append_transcript(entry)
                except NotFound:
                    skipped += 1  # deleted (or expired) meanwhile
                done += 1
        except TRANSIENT as exc:
            raise_if_cancelling()
            log.warning("spill replay: Redis unreachable; retrying later", extra={"error": str(exc)[:200]})
        await asyncio.to_thread(self._rewrite, entries[done:])
        if done:
            self.replayed += done - skipped
            TRANSCRIPT_SPILL_REPLAYED.inc(done - skipped)
            log.warning("spilled transcript entries replayed into Redis", extra={
                "written": done - skipped, "skipped_deleted": skipped, "left": len(entries) - done})
        return done - skipped


def _record(entry: interviews_pb2.TranscriptEntry) -> bytes:
    data = entry.SerializeToString()
    return _LEN.pack(len(data)) + data


class SpillReplayer:
    """Replays the spill file at start-up and every `retry_s` while it has records."""

    def __init__(self, spill: SpillFile, store: InterviewStore, retry_s: float = 2.0):
        self.spill, self.store, self.retry_s = spill, store, retry_s
        self._task = OwnedTask(self._run, "spill-replay")

    def start(self) -> None:
        if self.spill.enabled:
            self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                await self.spill.replay(self.store)
            except Exception:
                log.exception("spill replay failed; retrying")
            await asyncio.sleep(self.retry_s)
