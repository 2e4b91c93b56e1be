"""Fixtures: a real orchestrator process on the session's private redis-server, a typed client."""
from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis

from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.store.store import InterviewStore
from tests.support.procs import RedisServer, ServiceProcess

API_KEY = "team-a-" + secrets.token_hex(16)
READ_KEY = "reader-" + secrets.token_hex(16)
JOIN_SECRET = secrets.token_hex(32)


def orchestrator_env(redis_url: str, prefix: str, **extra: str) -> dict[str, str]:
    return {"REDIS_URL": redis_url, "ORCHESTRATOR_API_KEYS": f"team-a:{API_KEY},reader:team-a:ro:{READ_KEY}",
            "ORCHESTRATOR_JOIN_TOKEN_SECRET": JOIN_SECRET, "ORCHESTRATOR_KEY_PREFIX": prefix,
            "ORCHESTRATOR_WATCH_BLOCK_MS": "500", "VIDEO_ADDR": "", **extra}  # no video unless a test starts one


@pytest.fixture(scope="module")
def prefix() -> str:
    """Each test module gets its own key space in the shared redis-server."""
    return f"t{secrets.token_hex(3)}:"


@pytest.fixture(scope="module")
def orchestrator(redis_server: RedisServer, prefix: str) -> Iterator[ServiceProcess]:
    # No background evaluation jobs here: a job finishing after EndInterview would append an
    # evaluation event while a test reads the event stream (Evaluate itself still works). No API
    # rate limits either: the load-driver smoke drives this instance at full speed (the limits
    # have their own orchestrator in test_rate_limits.py).
    with ServiceProcess("orchestrator", env=orchestrator_env(
            redis_server.url, prefix, ORCHESTRATOR_EVALUATION_WORKERS="0",
            ORCHESTRATOR_API_RATE_PER_S="0", ORCHESTRATOR_API_WATCH_RATE_PER_S="0")) as proc:
        yield proc


@pytest.fixture
async def client(orchestrator: ServiceProcess) -> AsyncIterator[InterviewsClient]:
    async with InterviewsClient(orchestrator.address, API_KEY) as c:
        yield c


@pytest.fixture
async def store(redis_server: RedisServer, prefix: str) -> AsyncIterator[InterviewStore]:
    r = aioredis.Redis.from_url(redis_server.url)
    yield InterviewStore(r, prefix=prefix, retention_s=3600)
    await r.aclose()


@pytest.fixture(scope="package")
def ai() -> Iterator[dict[str, ServiceProcess]]:
    """Real VAD, STT (pocketsphinx), LLM (scripted) and TTS (flite) processes for Session tests."""
    procs = {"vad": ServiceProcess("vad"), "stt": ServiceProcess("stt"), "llm": ServiceProcess("llm"),
             "tts": ServiceProcess("tts", env={"TTS_PROVIDERS": "offline"})}
    try:
        for p in procs.values():
            p.start()
        yield procs
    finally:
        for p in procs.values():
            p.stop()


@pytest.fixture
async def orch(ai: dict[str, ServiceProcess], redis_server: RedisServer) -> AsyncIterator["Orchestrator"]:
    """Session.Connect served in this process (real clock) against the real AI services."""
    from tests.orchestrator.session_support import Orchestrator
    o = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}).start()
    yield o
    await o.stop()
