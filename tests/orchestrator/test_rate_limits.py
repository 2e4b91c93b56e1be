"""Per-API-key rate limits on the Interviews API (token buckets, services/common/ratelimit.py): a
burst over the limit gets RESOURCE_EXHAUSTED with a message and `retry-after` in the trailing
metadata; another key is unaffected; after the refill the key works again; opening WatchEvents
streams has its own bucket. A real orchestrator process on real Redis."""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import grpc
import pytest

from services.orchestrator.api.client import InterviewsClient
from tests.orchestrator.conftest import orchestrator_env
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(60)
KEYS = {n: f"{n}-{secrets.token_hex(12)}" for n in ("busy", "calm")}
BURST, WATCH_BURST = 4, 2


@pytest.fixture(scope="module")
def limited(redis_server: RedisServer) -> Iterator[ServiceProcess]:
    env = orchestrator_env(redis_server.url, f"t{secrets.token_hex(3)}:", ORCHESTRATOR_COMMANDS="false",
                           ORCHESTRATOR_EVALUATION_WORKERS="0",
                           ORCHESTRATOR_API_KEYS=f"busy:team-a:rw:{KEYS['busy']},calm:team-a:rw:{KEYS['calm']}",
                           ORCHESTRATOR_API_RATE_PER_S="2", ORCHESTRATOR_API_BURST=str(BURST),
                           ORCHESTRATOR_API_WATCH_RATE_PER_S="1", ORCHESTRATOR_API_WATCH_BURST=str(WATCH_BURST))
    with ServiceProcess("orchestrator", env=env) as proc:
        yield proc


async def test_a_burst_over_the_limit_is_refused_until_the_bucket_refills(limited: ServiceProcess) -> None:
    async with InterviewsClient(limited.address, KEYS["busy"]) as busy, \
            InterviewsClient(limited.address, KEYS["calm"]) as calm:
        for _ in range(BURST):
            await busy.list()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await busy.list()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit exceeded for API key 'busy'" in (err.value.details() or "")
        trailing = dict(err.value.trailing_metadata() or ())
        assert trailing.get("retry-after") == "1"  # one token at 2/s: 0.5 s, rounded up to whole seconds

        await calm.list()  # another key has its own bucket

        # WatchEvents streams have their own bucket: opening one works while calls are refused
        watches = [busy.watch("", after_event_id="$") for _ in range(WATCH_BURST + 1)]
        opened = [asyncio.create_task(w.__anext__()) for w in watches]
        done, _ = await asyncio.wait(opened, timeout=2.0)
        refused = [t for t in done if isinstance(t.exception(), grpc.aio.AioRpcError)]
        assert len(refused) == 1 and refused[0].exception().code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "WatchEvents streams" in (refused[0].exception().details() or "")
        for t in opened:
            t.cancel()
        await asyncio.gather(*opened, return_exceptions=True)
        for w in watches:
            await w.aclose()

        await asyncio.sleep(1.0)  # 2 tokens back
        await busy.list()
        await busy.list()
