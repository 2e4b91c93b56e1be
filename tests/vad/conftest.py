from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import grpc
import pytest

from tests.support.procs import ServiceProcess


@pytest.fixture(scope="module")
def vad_process() -> Iterator[ServiceProcess]:
    """The real service, `python -m services.vad`, shared by a test module."""
    with ServiceProcess("vad") as proc:
        yield proc


@pytest.fixture
async def channel(vad_process: ServiceProcess) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(vad_process.address) as ch:
        yield ch
