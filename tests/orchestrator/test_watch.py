"""WatchEvents: resumable from an event id on any instance; every event exactly once, in order."""
from __future__ import annotations

import asyncio

import grpc

from interview.v1 import interviews_pb2, interviews_pb2_grpc
from services.orchestrator.api.client import CodeKind, InterviewsClient, Mode
from services.orchestrator.store.store import InterviewStore
from tests.orchestrator.conftest import API_KEY, orchestrator_env
from tests.support.procs import ServiceProcess

MD = (("authorization", f"Bearer {API_KEY}"),)


async def produce(client: InterviewsClient, iid: str, n: int, tag: str) -> None:
    for i in range(n):
        await client.post_code_event(iid, CodeKind.EDIT, content=f"{tag}{i}")


def contents(events: list[interviews_pb2.Event]) -> list[str]:
    return [e.code_event.code.content for e in events if e.HasField("code_event")]


async def test_resume_after_disconnect_delivers_each_event_once_in_order(client: InterviewsClient,
                                                                         orchestrator: ServiceProcess):
    iid = (await client.create(template="demo")).interview.id
    await produce(client, iid, 5, "a")
    seen: list[interviews_pb2.Event] = []
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        stub = interviews_pb2_grpc.InterviewsStub(channel)
        call = stub.WatchEvents(interviews_pb2.WatchEventsRequest(interview_id=iid), metadata=MD)
        async for event in call:
            seen.append(event)
            if len(seen) == 4:  # lifecycle + 3 edits, then the connection drops
                break
        call.cancel()
    await produce(client, iid, 5, "b")  # written while nobody watches
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        stub = interviews_pb2_grpc.InterviewsStub(channel)
        call = stub.WatchEvents(interviews_pb2.WatchEventsRequest(interview_id=iid, after_event_id=seen[-1].event_id),
                                metadata=MD)
        live = asyncio.create_task(produce(client, iid, 5, "c"))  # and while the resumed watch runs
        async for event in call:
            seen.append(event)
            if contents(seen)[-1:] == ["c4"]:
                break
        call.cancel()
        await live
    ids = [e.event_id for e in seen]
    assert len(ids) == len(set(ids)), "an event was delivered twice"
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert contents(seen) == [f"{t}{i}" for t in "abc" for i in range(5)]


async def test_watch_from_dollar_gets_only_new_events(client: InterviewsClient):
    iid = (await client.create(template="demo")).interview.id
    await produce(client, iid, 3, "old")
    got: list[interviews_pb2.Event] = []

    async def watch() -> None:
        async for event in client.watch(iid, "$"):
            got.append(event)
            if len(got) == 2:
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.3)
    await client.set_mode(iid, Mode.CODING)
    async with asyncio.timeout(5):
        await task
    assert [e.WhichOneof("payload") for e in got] == ["mode_changed", "config_changed"]


async def test_any_instance_serves_watch_and_the_client_resumes_across_a_restart(
        redis_server, prefix: str, client: InterviewsClient, store: InterviewStore):
    """Events written through instance A are watched through instance B; B restarts mid-watch on the
    same port and the client's automatic resume neither loses nor repeats an event."""
    iid = (await client.create(template="demo")).interview.id
    env = orchestrator_env(redis_server.url, prefix, ORCHESTRATOR_COMMANDS="false", ORCHESTRATOR_SHUTDOWN_GRACE_S="0")
    b = ServiceProcess("orchestrator", env=env).start()
    got: list[interviews_pb2.Event] = []
    try:
        async with InterviewsClient(b.address, API_KEY) as watcher:
            async def watch() -> None:
                async for event in watcher.watch(iid):
                    got.append(event)
                    if contents(got)[-1:] == ["late4"]:
                        return

            task = asyncio.create_task(watch())
            await produce(client, iid, 5, "early")
            while len(contents(got)) < 5:
                await asyncio.sleep(0.05)
            b.stop()
            await produce(client, iid, 5, "late")  # while B is down
            b.start()
            async with asyncio.timeout(20):
                await task
    finally:
        b.stop()
    ids = [e.event_id for e in got]
    assert len(ids) == len(set(ids))
    assert contents(got) == [f"early{i}" for i in range(5)] + [f"late{i}" for i in range(5)]


async def test_global_lifecycle_stream(client: InterviewsClient):
    got: list[interviews_pb2.Event] = []

    async def watch() -> None:
        async for event in client.watch("", "$"):
            got.append(event)
            if len(got) == 3:
                return

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.3)
    iid = (await client.create(template="demo")).interview.id
    await client.end(iid, "done")
    await client.delete(iid)
    async with asyncio.timeout(5):
        await task
    assert [(e.interview_id, e.lifecycle.kind) for e in got] == [
        (iid, interviews_pb2.Lifecycle.CREATED), (iid, interviews_pb2.Lifecycle.ENDED),
        (iid, interviews_pb2.Lifecycle.DELETED)]


async def test_watch_ends_when_the_interview_is_deleted(client: InterviewsClient):
    iid = (await client.create(template="demo")).interview.id
    got: list[interviews_pb2.Event] = []

    async def watch() -> None:
        async for event in client.watch(iid):
            got.append(event)

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    await client.delete(iid)
    async with asyncio.timeout(5):
        await task  # returns: the server ended the stream
    assert got[0].lifecycle.kind == interviews_pb2.Lifecycle.CREATED
