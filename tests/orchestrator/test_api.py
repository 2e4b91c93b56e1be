"""The Interviews API end to end: a real orchestrator process on a real redis-server."""
from __future__ import annotations

import time

import grpc
import pytest

from interview.v1 import common_pb2, interviews_pb2, interviews_pb2_grpc, session_pb2
from services.orchestrator import plans
from services.orchestrator.api.client import CodeKind, InterviewsClient, Mode
from services.orchestrator.store.store import InterviewStore
from services.orchestrator.api.tokens import JoinTokens, TokenError
from tests.orchestrator.conftest import API_KEY, JOIN_SECRET, READ_KEY


async def code_of(awaitable) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await awaitable
    return info.value.code(), info.value.details()


async def test_create_get_update_phase_code_end_round_trip(client: InterviewsClient, store: InterviewStore):
    created = await client.create(template="backend-engineer", candidate_name="Ada", camera=True,
                                  labels={"team": "payments"})
    iv = created.interview
    assert iv.id.startswith("iv_") and iv.status == session_pb2.INTERVIEW_CREATED
    assert iv.plan.name == "backend-engineer" and iv.phase_id == "intro" and iv.mode == Mode.CONVERSATIONAL
    assert iv.created_by == "team-a" and iv.labels["team"] == "payments" and iv.video_policy.camera_allowed
    assert created.join_url == f"http://127.0.0.1:8080/i/{iv.id}#token={created.join_token}"
    claims = JoinTokens(JOIN_SECRET.encode()).verify(created.join_token, iv.id, time.time())
    assert claims.expires_at == created.join_token_expires_at.seconds
    assert created.join_token not in iv.SerializeToString().decode(errors="ignore")  # never stored

    got = await client.get(iv.id)
    assert got == iv

    coding = await client.set_mode(iv.id, Mode.CODING, silence_timeout_s=120)
    assert coding.mode == Mode.CODING and coding.config.silence_timeout_s == 120
    tuned = await client.update_config(iv.id, vad_params=common_pb2.VadParams(min_silence_ms=4000))
    assert tuned.config.coding_vad.min_silence_ms == 4000 and not tuned.config.conversational_vad.HasField("min_silence_ms")

    design = await client.set_phase(iv.id, "design")  # system design: conversational
    assert design.phase_id == "design" and design.mode == Mode.CONVERSATIONAL
    live = await client.set_phase(iv.id, "coding")  # entering live coding switches to CODING
    assert live.mode == Mode.CODING

    edit = await client.post_code_event(iv.id, CodeKind.EDIT, content="def f(): pass", language="python")
    assert edit.mode == Mode.CODING  # an edit never changes the mode
    run = await client.post_code_event(iv.id, CodeKind.RUN, content="def f(): pass", output="ok")
    assert run.mode == Mode.CONVERSATIONAL  # RUN switches back (run_switches_to_conversational default)

    ended = await client.end(iv.id, "completed")
    assert ended.status == session_pb2.INTERVIEW_ENDED and ended.end_reason == "completed"
    assert ended.ended_at.seconds > 0

    kinds = [e.WhichOneof("payload") for e in await events_so_far(client, store, iv.id)]
    assert kinds == ["lifecycle", "mode_changed", "config_changed", "config_changed", "phase_changed", "mode_changed",
                     "phase_changed", "mode_changed", "code_event", "code_event", "mode_changed", "lifecycle"]


async def events_so_far(client: InterviewsClient, store: InterviewStore, iid: str) -> list[interviews_pb2.Event]:
    """Every event so far, through WatchEvents (stopped once it reaches the stream's last id)."""
    last = await store.last_event_id(store.stream_key(iid))
    out = []
    async for event in client.watch(iid):
        out.append(event)
        if event.event_id == last:
            return out
    return out


async def test_list_pages_and_filters_by_status(client: InterviewsClient):
    ids = [(await client.create(template="demo", candidate_name=f"c{i}")).interview.id for i in range(5)]
    await client.end(ids[1])
    await client.end(ids[3])
    seen = [iv.id async for iv in client.list_all(page_size=2)]
    assert [i for i in seen if i in ids] == ids  # creation order, across pages
    ended = [iv.id async for iv in client.list_all(status=session_pb2.INTERVIEW_ENDED, page_size=1)]
    assert ids[1] in ended and ids[3] in ended and ids[0] not in ended
    created = [iv.id async for iv in client.list_all(status=session_pb2.INTERVIEW_CREATED)]
    assert ids[0] in created and ids[1] not in created


async def test_transcript_pages_in_sequence(client: InterviewsClient, store: InterviewStore):
    iid = (await client.create(template="demo")).interview.id
    for i in range(7):
        await store.append_transcript(interviews_pb2.TranscriptEntry(
            interview_id=iid, role=common_pb2.ROLE_USER if i % 2 else common_pb2.ROLE_AGENT,
            text=f"utterance {i}", entry_id=f"e{i}", phase_id="intro", mode=common_pb2.MODE_CONVERSATIONAL))
    entries = [e async for e in client.transcript(iid, page_size=3)]
    assert [e.sequence for e in entries] == list(range(1, 8))
    assert [e.text for e in entries] == [f"utterance {i}" for i in range(7)]


async def test_request_id_makes_create_idempotent(client: InterviewsClient):
    first = await client.create(template="demo", candidate_name="Bo", request_id="req-42")
    again = await client.create(template="demo", candidate_name="Bo", request_id="req-42")
    assert again.interview.id == first.interview.id
    code, msg = await code_of(client.create(template="demo", candidate_name="Other", request_id="req-42"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "req-42" in msg


async def test_delete_erases_every_key(client: InterviewsClient, store: InterviewStore):
    iid = (await client.create(template="demo", request_id="to-erase")).interview.id
    await store.append_transcript(interviews_pb2.TranscriptEntry(interview_id=iid, text="secret answer", entry_id="x"))
    await store.acquire_lease(iid, "instance-1", 10_000)
    await client.post_code_event(iid, CodeKind.EDIT, content="print(1)")
    before = [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}*")]
    assert await client.delete(iid) == 7  # state, events, transcript, entries, control, lease, request id
    after = [k async for k in store.redis.scan_iter(match=f"{store.keys.prefix}*")]
    assert not [k for k in after if iid.encode() in k]
    for key in after:  # no value anywhere mentions the interview except the lifecycle log (id only)
        if await store.redis.type(key) == b"zset":
            assert iid.encode() not in await store.redis.zrange(key, 0, -1)
    assert len(before) > len(after)
    code, _ = await code_of(client.get(iid))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = await code_of(client.delete(iid))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_retention_ttl_is_set_on_every_key(client: InterviewsClient, store: InterviewStore, orchestrator):
    iid = (await client.create(template="demo")).interview.id
    await store.append_transcript(interviews_pb2.TranscriptEntry(interview_id=iid, text="hi", entry_id="1"))
    await client.set_mode(iid, Mode.CODING)
    for key in store.keys.interview_keys(iid):
        if await store.redis.exists(key):
            ttl = await store.redis.ttl(key)
            assert 0 < ttl <= 30 * 24 * 3600, key


# ---- validation: the right status and a message that names the problem ----

async def test_unknown_and_malformed_ids(client: InterviewsClient):
    assert (await code_of(client.get("iv_00000000000000000000")))[0] == grpc.StatusCode.NOT_FOUND
    code, msg = await code_of(client.get("not-an-id"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "interview_id" in msg
    code, msg = await code_of(client.get(""))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "required" in msg
    for call in (client.set_mode("iv_00000000000000000000", Mode.CODING), client.end("iv_00000000000000000000"),
                 client.set_phase("iv_00000000000000000000", "intro"),
                 client.post_code_event("iv_00000000000000000000", CodeKind.RUN)):
        assert (await code_of(call))[0] == grpc.StatusCode.NOT_FOUND
    assert (await code_of(_drain(client.transcript("iv_00000000000000000000"))))[0] == grpc.StatusCode.NOT_FOUND
    assert (await code_of(_drain(client.watch("iv_00000000000000000000"))))[0] == grpc.StatusCode.NOT_FOUND


async def _drain(aiter) -> None:
    async for _ in aiter:
        pass


async def test_invalid_transitions_are_failed_precondition(client: InterviewsClient):
    iid = (await client.create(template="demo")).interview.id
    code, msg = await code_of(client.set_phase(iid, "system-design"))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "not in plan 'demo'" in msg and "intro, coding, wrap-up" in msg
    await client.end(iid, "done")
    for call in (client.set_phase(iid, "coding"), client.set_mode(iid, Mode.CODING), client.end(iid),
                 client.post_code_event(iid, CodeKind.EDIT, content="x")):
        code, msg = await code_of(call)
        assert code == grpc.StatusCode.FAILED_PRECONDITION and "ended" in msg


async def test_malformed_input_is_invalid_argument(client: InterviewsClient, orchestrator):
    stub = interviews_pb2_grpc.InterviewsStub(client._channel)
    md = (("authorization", f"Bearer {API_KEY}"),)
    code, msg = await code_of(stub.CreateInterview(interviews_pb2.CreateInterviewRequest(), metadata=md))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "template" in msg
    code, msg = await code_of(client.create(template="astronaut"))
    assert code == grpc.StatusCode.NOT_FOUND and "backend-engineer" in msg
    bad_plan = plans.load_dir()["demo"]
    bad_plan.phases[1].time_budget_s = -5
    code, msg = await code_of(client.create(plan=bad_plan))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "plan.phases[1].time_budget_s" in msg
    cfg = interviews_pb2.InterviewConfig(coding_vad=common_pb2.VadParams(activation_threshold=1.5))
    code, msg = await code_of(client.create(template="demo", config=cfg))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "config.coding_vad.activation_threshold" in msg
    code, msg = await code_of(client.create(template="demo", candidate_email="nope"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "candidate.email" in msg

    iid = (await client.create(template="demo")).interview.id
    code, msg = await code_of(stub.UpdateConfig(interviews_pb2.UpdateConfigRequest(interview_id=iid), metadata=md))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "nothing to update" in msg
    code, msg = await code_of(stub.UpdateConfig(interviews_pb2.UpdateConfigRequest(interview_id=iid, mode=7), metadata=md))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "mode" in msg
    code, msg = await code_of(client.update_config(iid, vad_params=common_pb2.VadParams(min_silence_ms=10)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "vad_params.min_silence_ms" in msg
    code, msg = await code_of(client.post_code_event(iid, 0))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "code.kind" in msg
    code, msg = await code_of(client.post_code_event(iid, CodeKind.EDIT, content="x" * 300_000))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "at most" in msg
    code, msg = await code_of(_drain(client.watch(iid, "yesterday")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "after_event_id" in msg
    code, msg = await code_of(client.list(page_token="garbage"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in msg
    code, msg = await code_of(stub.Evaluate(interviews_pb2.EvaluateRequest(interview_id=iid), metadata=md))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "has not ended" in msg
    code, msg = await code_of(stub.Evaluate(interviews_pb2.EvaluateRequest(interview_id="nope"), metadata=md))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "interview_id" in msg
    assert (await client.get(iid)).id == iid  # still serving after all of that


# ---- authentication ----

async def test_auth_failures(orchestrator, client: InterviewsClient):
    iid = (await client.create(template="demo")).interview.id
    channel = grpc.aio.insecure_channel(orchestrator.address)
    stub = interviews_pb2_grpc.InterviewsStub(channel)
    get = interviews_pb2.GetInterviewRequest(interview_id=iid)
    try:
        code, msg = await code_of(stub.GetInterview(get))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "Bearer" in msg
        code, msg = await code_of(stub.GetInterview(get, metadata=(("authorization", f"Basic {API_KEY}"),)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and "malformed" in msg
        code, msg = await code_of(stub.GetInterview(get, metadata=(("authorization", "Bearer " + "x" * 40),)))
        assert code == grpc.StatusCode.UNAUTHENTICATED and msg == "unknown API key"
        token = (await client.create(template="demo")).join_token
        code, msg = await code_of(stub.GetInterview(get, metadata=(("authorization", f"Bearer {token}"),)))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "join token" in msg
        reader = (("authorization", f"Bearer {READ_KEY}"),)
        assert (await stub.GetInterview(get, metadata=reader)).id == iid
        code, msg = await code_of(stub.EndInterview(interviews_pb2.EndInterviewRequest(interview_id=iid), metadata=reader))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "read-only" in msg
        watch = stub.WatchEvents(interviews_pb2.WatchEventsRequest(interview_id=iid))
        code, _ = await code_of(watch.read())
        assert code == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await channel.close()
    logs = orchestrator.logs()
    assert API_KEY not in logs and READ_KEY not in logs and token not in logs and "jt1." not in logs


async def test_join_tokens_expire_and_are_scoped():
    tokens = JoinTokens(JOIN_SECRET.encode())
    token, expires = tokens.issue("iv_a", now=1000.0, ttl_s=60)
    assert tokens.verify(token, "iv_a", now=1059.0).interview_id == "iv_a"
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token, "iv_a", now=1060.0)
    with pytest.raises(TokenError, match="another interview"):
        tokens.verify(token, "iv_b", now=1000.0)
    body = token.split(".")[1]
    forged = token.replace(body, body[:-2] + ("AA" if body[-2:] != "AA" else "BB"))
    with pytest.raises(TokenError, match="signature"):
        tokens.verify(forged, "iv_a", now=1000.0)
    with pytest.raises(TokenError, match="signature"):
        JoinTokens.ephemeral().verify(token, "iv_a", now=1000.0)


async def test_store_down_gives_unavailable_then_recovers(redis_server, prefix):
    """Its own redis-server: stopping it must not disturb other tests."""
    from tests.orchestrator.conftest import orchestrator_env
    from tests.support.procs import RedisServer, ServiceProcess

    with RedisServer() as own:
        with ServiceProcess("orchestrator", env=orchestrator_env(own.url, prefix, ORCHESTRATOR_COMMANDS="false")) as proc:
            async with InterviewsClient(proc.address, API_KEY) as c:
                iid = (await c.create(template="demo")).interview.id
                own.stop()
                code, msg = await code_of(c.get(iid))
                assert code == grpc.StatusCode.UNAVAILABLE and "retry" in msg
                own.start()
                assert (await c.get(iid)).id == iid  # AOF: the interview survived the restart
