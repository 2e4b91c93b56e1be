"""What makes a session the owner of its interview: the owner lease (renewed every third of its
TTL), the control stream (read only by the owner: config, mode, phase, code events, end), the
in-flight marker, and what the owner writes when it leaves.

Losing any of them to a newer owner (lease not renewed, a fenced ack or marker write) is
reported once through `lost` ("replaced"); Redis being briefly unreachable is retried.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from interview.v1 import interviews_pb2
from services.common.tasks import raise_if_cancelling
from services.orchestrator.conversation.inflight import InflightMarker
from services.orchestrator.store.store import TRANSIENT, Fenced, InterviewStore, StoreError

log = logging.getLogger("conversation.ownership")


class Ownership:
    def __init__(self, store: InterviewStore, iid: str, *, owner: str, epoch: int, lease_ttl_ms: int,
                 control_cursor: str, marker: Callable[[], list[interviews_pb2.TranscriptEntry]],
                 apply: Callable[[interviews_pb2.Event], None], lost: Callable[[], None]):
        self.store, self.iid, self.owner, self.epoch = store, iid, owner, epoch
        self.lease_ttl_ms = lease_ttl_ms
        self._cursor = control_cursor
        self._apply, self._lost = apply, lost
        self.inflight = InflightMarker(store, iid, epoch, marker)

    def kick(self) -> None:
        """Something the in-flight marker covers changed."""
        self.inflight.kick()

    def loops(self) -> dict[str, Awaitable[None]]:
        """The coroutines the session runs for as long as it owns the interview."""
        return {"control": self._control_loop(), "lease": self._lease_loop(), "inflight": self._inflight_loop()}

    async def _control_loop(self) -> None:
        cursor = self._cursor
        while True:
            raise_if_cancelling()  # a cancellation a redis call swallowed (it returned normally)
            try:
                items = await self.store.read_control(self.iid, cursor, block_ms=1000)
            except TRANSIENT as exc:
                raise_if_cancelling()
                log.warning("control stream unreachable; retrying", extra={"error": str(exc)[:200]})
                await asyncio.sleep(0.5)
                continue
            for cid, event in items:
                self._apply(event)
                cursor = cid
            if items:
                try:
                    await self.store.ack_control(self.iid, self.epoch, cursor)
                except Fenced:
                    self._lost()
                    return

    async def _lease_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl_ms / 3000)
            try:
                if not await self.store.renew_lease(self.iid, self.owner, self.epoch, self.lease_ttl_ms):
                    self._lost()
                    return
            except TRANSIENT as exc:
                raise_if_cancelling()
                log.warning("lease renewal failed; retrying", extra={"error": str(exc)[:200]})

    async def _inflight_loop(self) -> None:
        try:
            await self.inflight.run()
        except Fenced:
            self._lost()

    async def leave(self, session_id: str, reason: str, *, drained: bool) -> None:
        """The owner's last writes: clear the marker (if everything was written; else the next
        owner writes what is missing), SESSION_LEFT, release the lease."""
        if drained:
            await self.quietly(self.store.set_inflight(self.iid, self.epoch, []))
        await self.quietly(self.store.append_event(self.store.event(self.iid, lifecycle=interviews_pb2.Lifecycle(
            kind=interviews_pb2.Lifecycle.SESSION_LEFT, reason=reason, session_id=session_id)), epoch=self.epoch))
        await self.quietly(self.store.release_lease(self.iid, self.owner, self.epoch))

    def append_event(self, **payload: Any) -> Awaitable[None]:
        """A fenced event of this interview (turn metrics), failures logged."""
        return self.quietly(self.store.append_event(self.store.event(self.iid, **payload), epoch=self.epoch))

    @staticmethod
    async def quietly(aw: Awaitable[Any]) -> None:
        try:
            await aw
        except (StoreError, *TRANSIENT) as exc:
            log.warning("store write at session end failed", extra={"error": str(exc)[:200]})
