"""Teams: an API key sees and changes only its team's interviews (another team's are NOT_FOUND,
worded as unknown ids), also in ListInterviews and the global lifecycle stream of WatchEvents;
read-only keys stay read-only. A real orchestrator process on real Redis."""
from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator

import grpc
import pytest

from interview.v1 import interviews_pb2
from services.orchestrator.api.auth import parse_keys
from services.orchestrator.api.client import InterviewsClient
from tests.orchestrator.conftest import orchestrator_env
from tests.orchestrator.session_support import plan
from tests.support.procs import RedisServer, ServiceProcess

pytestmark = pytest.mark.timeout(60)
KEYS = {n: f"{n}-{secrets.token_hex(12)}" for n in ("a1", "a2", "a-ro", "b1", "legacy")}


@pytest.fixture(scope="module")
def teams(redis_server: RedisServer) -> Iterator[ServiceProcess]:
    spec = ",".join([f"a1:team-a:rw:{KEYS['a1']}", f"a2:team-a:rw:{KEYS['a2']}", f"a-ro:team-a:ro:{KEYS['a-ro']}",
                     f"b1:team-b:rw:{KEYS['b1']}", f"legacy:{KEYS['legacy']}"])
    env = orchestrator_env(redis_server.url, f"t{secrets.token_hex(3)}:", ORCHESTRATOR_API_KEYS=spec,
                           ORCHESTRATOR_COMMANDS="false")
    with ServiceProcess("orchestrator", env=env) as proc:
        yield proc


def test_key_formats() -> None:
    keys = {k.name: k for k in parse_keys(f"x:team-x:ro:{'k' * 16},old:{'k' * 16},old-ro:{'k' * 16}:ro")}
    assert (keys["x"].team, keys["x"].read_only) == ("team-x", True)
    assert (keys["old"].team, keys["old"].read_only) == ("old", False)  # the older format: team = name
    assert keys["old-ro"].read_only
    for bad in (f"x:team:admin:{'k' * 16}", f"x::rw:{'k' * 16}", "x:short", f"a:b:c:d:{'k' * 16}"):
        with pytest.raises(ValueError, match="name:team:rw|ro:key") as err:
            parse_keys(bad)
        assert "k" * 16 not in str(err.value)


async def _watch_lifecycle(address: str, key: str, into: list[interviews_pb2.Event]) -> None:
    async with InterviewsClient(address, key) as c:
        async for event in c.watch("", after_event_id="$"):
            into.append(event)


async def test_a_key_sees_and_changes_only_its_teams_interviews(teams: ServiceProcess) -> None:
    seen_a: list[interviews_pb2.Event] = []
    seen_b: list[interviews_pb2.Event] = []
    watchers = [asyncio.create_task(_watch_lifecycle(teams.address, KEYS["a-ro"], seen_a)),
                asyncio.create_task(_watch_lifecycle(teams.address, KEYS["b1"], seen_b))]
    await asyncio.sleep(0.5)
    try:
        async with InterviewsClient(teams.address, KEYS["a1"]) as a1, \
                InterviewsClient(teams.address, KEYS["a2"]) as a2, \
                InterviewsClient(teams.address, KEYS["a-ro"]) as ro, \
                InterviewsClient(teams.address, KEYS["b1"]) as b1:
            mine = (await a1.create(plan=plan(), candidate_name="Ada")).interview
            theirs = (await b1.create(plan=plan(), candidate_name="Bo")).interview
            assert mine.team == "team-a" and theirs.team == "team-b" and mine.created_by == "a1"
            assert (await a2.get(mine.id)).id == mine.id  # another key of the same team
            assert (await ro.get(mine.id)).id == mine.id
            calls = {
                "get": lambda c, i: c.get(i),
                "end": lambda c, i: c.end(i),
                "set_phase": lambda c, i: c.set_phase(i, "intro"),
                "transcript": lambda c, i: c.transcript(i).__anext__(),
                "reissue": lambda c, i: c.reissue_link(i),
                "delete": lambda c, i: c.delete(i),
                "watch": lambda c, i: c.watch(i).__anext__(),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await call(b1, mine.id)
                assert err.value.code() == grpc.StatusCode.NOT_FOUND, name
                unknown = "iv_" + "0" * 20
                with pytest.raises(grpc.aio.AioRpcError) as err2:
                    await call(b1, unknown)
                # the same words as for an id that does not exist: nothing tells the two apart
                assert err.value.details().replace(mine.id, "ID") == err2.value.details().replace(unknown, "ID"), name
            listed_a = {iv.id for iv in (await a2.list(page_size=500)).interviews}
            listed_b = {iv.id for iv in (await b1.list(page_size=500)).interviews}
            assert mine.id in listed_a and theirs.id not in listed_a
            assert theirs.id in listed_b and mine.id not in listed_b
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ro.end(mine.id)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await ro.reissue_link(mine.id)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert (await a2.end(mine.id)).status  # its own team may
            await a1.delete(mine.id)
            await b1.delete(theirs.id)
        await asyncio.sleep(1.0)
    finally:
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    ids_a = {e.interview_id for e in seen_a}
    ids_b = {e.interview_id for e in seen_b}
    assert ids_a == {mine.id} and ids_b == {theirs.id}, (ids_a, ids_b)
    kinds_a = [e.lifecycle.kind for e in seen_a]
    assert kinds_a == [interviews_pb2.Lifecycle.CREATED, interviews_pb2.Lifecycle.ENDED,
                       interviews_pb2.Lifecycle.DELETED], kinds_a


async def test_older_keys_are_their_own_team(teams: ServiceProcess) -> None:
    async with InterviewsClient(teams.address, KEYS["legacy"]) as old, \
            InterviewsClient(teams.address, KEYS["a1"]) as a1:
        iv = (await old.create(plan=plan(), candidate_name="Cy")).interview
        assert iv.team == "legacy"
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await a1.get(iv.id)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
