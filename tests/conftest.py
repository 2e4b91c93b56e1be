"""Suite-wide fixtures and the `live` marker.

`@pytest.mark.live("DEEPGRAM_API_KEY")` marks a provider test that runs against the real cloud
when that key is set and is skipped otherwise; the same test body runs against our fake.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from services.common.clock import FakeClock
from tests.support.procs import RedisServer

os.environ.setdefault("OTEL_SDK_DISABLED", "true")


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("live"):
        var = marker.args[0] if marker.args else ""
        if not var or not os.environ.get(var):
            pytest.skip(f"live provider test: set {var or 'the API key'} to run it against the real service")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One private redis-server (AOF on) for the session; tests use their own key prefixes or db."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
