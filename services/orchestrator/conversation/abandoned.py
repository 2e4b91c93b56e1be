"""Turns left in flight by an owner that died and never got a successor are closed, not kept.

A rejoin closes its predecessor's in-flight marker (connect.py). When the candidate never comes
back, this sweeper does it: every `interval_s` it looks at markers unchanged for longer than a
lease, and for each whose lease nobody holds, closes it (store.close_abandoned: takes the lease
without force, writes the entries idempotently by id, releases it) — at once for an ENDED
interview (no rejoin can come), after `grace_s` otherwise (the candidate may still reconnect and
the rejoin closes them itself). Every instance runs one; the lease makes them take turns.
"""
from __future__ import annotations

import asyncio
import logging

from interview.v1 import session_pb2
from services.common.tasks import OwnedTask, raise_if_cancelling
from services.orchestrator.store.store import TRANSIENT, InterviewStore, NotFound, StoreError

log = logging.getLogger("conversation.abandoned")


class AbandonedSweeper:
    def __init__(self, store: InterviewStore, owner: str, *, lease_ttl_ms: int, grace_s: float, interval_s: float):
        self.store, self.owner = store, f"{owner}:sweeper"
        self.lease_ttl_ms, self.grace_s, self.interval_s = lease_ttl_ms, grace_s, interval_s
        self._task = OwnedTask(self._run, "abandoned-sweeper")
        self._wake = asyncio.Event()
        self.closed = 0

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    def wake(self) -> None:
        """An interview just ended: look sooner than the next interval."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except TRANSIENT as exc:
                raise_if_cancelling()
                log.warning("sweeper: store unreachable; retrying", extra={"error": str(exc)[:200]})
            except Exception:
                log.exception("sweeper failed; it runs again at the next interval")
            try:
                async with asyncio.timeout(self.interval_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    async def sweep(self) -> int:
        """One pass; returns how many markers it closed."""
        n = 0
        for iid, changed in await self.store.inflight_since(self.lease_ttl_ms / 1000):
            try:
                if await self.store.lease_holder(iid):
                    continue  # a live session (or one whose lease has not expired yet) owns it
                snap = await self.store.get(iid)
                ended = snap.interview.status == session_pb2.INTERVIEW_ENDED
                if not ended and self.store.now() - changed < self.grace_s:
                    continue  # the candidate may still come back; their rejoin closes it
                closed = await self.store.close_abandoned(iid, self.owner, self.lease_ttl_ms)
            except NotFound:
                await self.store.redis.zrem(self.store.keys.inflight_index, iid)
                continue
            except StoreError as exc:  # fenced by a rejoin meanwhile: the rejoin closes it
                log.info("sweeper: marker taken over", extra={"interview_id": iid, "error": exc.message})
                continue
            if closed:
                n += 1
                self.closed += 1
                log.warning("closed turns an abandoned session left in flight", extra={
                    "interview_id": iid, "entries": [e.entry_id for e in closed], "ended": ended})
        return n
