"""Readiness follows Redis; liveness never does.

While Redis is unreachable this instance cannot create, join or end interviews, so its named
health services (`interview.v1.Interviews`, `interview.v1.Session`, and `readiness` for probes)
answer NOT_SERVING and load balancers send new work elsewhere; they answer SERVING again when a
PING succeeds. The overall service ("") stays SERVING: a liveness probe that restarted the process
would kill the live sessions and the transcript entries waiting in their outboxes.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from grpc_health.v1 import health_pb2

from services.common.tasks import OwnedTask, raise_if_cancelling
from services.orchestrator.store.store import TRANSIENT

log = logging.getLogger("orchestrator.readiness")

READINESS = "readiness"
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class StoreReadiness:
    def __init__(self, ping: Callable[[], Awaitable[object]], set_status: Callable[[str, int], Awaitable[None]],
                 services: list[str], *, interval_s: float = 1.0, timeout_s: float = 1.0):
        self.ping, self.set_status = ping, set_status
        self.services = [*services, READINESS]
        self.interval_s, self.timeout_s = interval_s, timeout_s
        self.ready: bool | None = None
        self._task = OwnedTask(self._run, "store-readiness")

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def check(self) -> bool:
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.ping()
            ok = True
        except (TimeoutError, *TRANSIENT) as exc:
            raise_if_cancelling()
            ok = False
            if self.ready is not False:
                log.error("Redis is unreachable: readiness NOT_SERVING until it returns", extra={"error": str(exc)[:200]})
        if ok and self.ready is False:
            log.warning("Redis is reachable again: readiness SERVING")
        changed, self.ready = ok != self.ready, ok
        if changed or not ok:  # re-asserted while down: the server's start-up sets every service SERVING
            for svc in self.services:
                await self.set_status(svc, SERVING if ok else NOT_SERVING)
        return ok

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.interval_s)
