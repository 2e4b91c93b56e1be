"""Fixtures: the fake orchestrator (tests/fakes/session.py) and media served in-process against it.

`session_addr` is the one place that says which orchestrator media talks to: point it at the real
orchestrator's Session service to run the same tests full stack.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from services.common import config
from services.media.config import MediaConfig
from services.media.gateway import Gateway
from tests.fakes.session import FakeSession, start_fake
from tests.support.procs import free_port


@pytest.fixture
def fake() -> FakeSession:
    return FakeSession()


@pytest.fixture
async def session_addr(fake: FakeSession) -> AsyncIterator[str]:
    server, port = await start_fake(fake)
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@dataclass
class Media:
    gateway: Gateway
    url: str


def media_config(**env: str) -> MediaConfig:
    base = {"MEDIA_PORT": str(free_port()), "MEDIA_METRICS_PORT": str(free_port()), "MEDIA_ICE_LOOPBACK_ONLY": "true", "MEDIA_ICE_TIMEOUT_S": "5"}
    return config.load(MediaConfig, "media", environ={**base, **env})


@pytest.fixture
def media_env() -> dict[str, str]:
    """Override per test module/test to change MEDIA_* settings."""
    return {}


@pytest.fixture
async def media(session_addr: str, media_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Media]:
    from aiohttp import web

    monkeypatch.setenv("ORCHESTRATOR_ADDR", session_addr)
    cfg = media_config(**media_env)
    gateway = Gateway(cfg)
    runner = web.AppRunner(gateway.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", cfg.http_port).start()
    yield Media(gateway, f"http://127.0.0.1:{cfg.http_port}")
    await runner.cleanup()
    await asyncio.sleep(0)
