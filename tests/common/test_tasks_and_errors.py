"""services/common/tasks.py (owned tasks, work queues) and errors.py (one error type)."""
from __future__ import annotations

import asyncio

import grpc
import pytest

from services.common import errors
from services.common.tasks import OwnedTask, QueueClosed, WorkQueue, cancel_and_wait


async def test_owned_task_starts_once_and_stop_waits_for_its_cleanup():
    events: list[str] = []

    async def run() -> None:
        events.append("start")
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            events.append("cleaned up")

    owned = OwnedTask(run, "sleeper")
    owned.start()
    owned.start()  # no second task while it runs
    await asyncio.sleep(0)
    assert owned.running and events == ["start"]
    await owned.stop()
    assert not owned.running and events == ["start", "cleaned up"]
    await owned.stop()  # idempotent


async def test_cancel_and_wait_logs_a_failed_task_instead_of_raising(caplog):
    async def boom() -> None:
        raise RuntimeError("broken")

    task = asyncio.create_task(boom())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert "broken" in caplog.text
    await cancel_and_wait(None)


async def test_work_queue_drains_what_was_queued_before_close():
    queue: WorkQueue[int] = WorkQueue(4)
    got: list[int] = []

    async def consume() -> None:
        async for item in queue:
            got.append(item)

    consumer = asyncio.create_task(consume())
    for i in range(3):
        await queue.put(i)
    queue.close()
    await asyncio.wait_for(consumer, 1)
    assert got == [0, 1, 2]
    with pytest.raises(QueueClosed):
        queue.put_nowait(9)


async def test_work_queue_close_wakes_a_waiting_consumer_and_bounds_producers():
    queue: WorkQueue[int] = WorkQueue(2)
    consumer = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(QueueClosed):
        await asyncio.wait_for(consumer, 1)

    bounded: WorkQueue[int] = WorkQueue(2)
    bounded.put_nowait(1)
    bounded.put_nowait(2)
    with pytest.raises(asyncio.QueueFull):
        bounded.put_nowait(3)
    waiting = asyncio.create_task(bounded.put(3))
    await asyncio.sleep(0.01)
    assert not waiting.done()  # back-pressure: the producer waits for room
    assert await bounded.get() == 1
    await asyncio.wait_for(waiting, 1)
    assert bounded.drop_pending() == [2, 3] and bounded.qsize() == 0
    with pytest.raises(ValueError):
        WorkQueue(0)


def test_service_error_carries_status_field_and_its_in_band_problem():
    err = errors.invalid("config.sample_rate_hz", "44100 is not supported; use 8000 or 16000")
    assert err.code is grpc.StatusCode.INVALID_ARGUMENT and err.field == "config.sample_rate_hz"
    problem = err.problem()
    assert problem.code == 3 and problem.field == "config.sample_rate_hz"
    assert problem.message == "config.sample_rate_hz: 44100 is not supported; use 8000 or 16000"
    assert errors.ServiceError("x", code=grpc.StatusCode.UNAVAILABLE).code is grpc.StatusCode.UNAVAILABLE
    assert errors.NotFound("no such interview").problem().code == grpc.StatusCode.NOT_FOUND.value[0]
    assert errors.problem(grpc.StatusCode.RESOURCE_EXHAUSTED, "frame too large", "frame").code == 8
