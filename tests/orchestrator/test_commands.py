"""The Redis command path: XADD create/end on the command stream, replies on the named stream."""
from __future__ import annotations

import json
import time

import redis.asyncio as aioredis

from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.store.store import InterviewStore
from services.orchestrator.api.tokens import JoinTokens
from tests.orchestrator.conftest import JOIN_SECRET


async def command(r: aioredis.Redis, prefix: str, reply_to: str, **fields: str) -> dict:
    """XADD a command and wait for its reply (what a backend does)."""
    start = "0-0"
    rows = await r.xrevrange(reply_to, count=1)
    if rows:
        start = rows[0][0].decode()
    await r.xadd(f"{prefix}commands", {"reply_to": reply_to, **fields})
    reply = await r.xread({reply_to: start}, count=1, block=10_000)
    assert reply, "no reply within 10 s"
    return json.loads(reply[0][1][0][1][b"reply"])


async def test_create_and_end_through_the_command_stream(orchestrator, client: InterviewsClient,
                                                         store: InterviewStore, prefix: str):
    r = store.redis
    replies = f"{prefix}replies:hr-backend"
    created = await command(r, prefix, replies, id="cmd-1", type="create", team="team-a",
                            request=json.dumps({"template": "frontend-engineer", "candidate": {"name": "Lin"}}))
    assert created["ok"] is True and created["status"] == "INTERVIEW_CREATED"
    iid = created["interview_id"]
    assert created["join_url"].endswith(f"/i/{iid}#token={created['join_token']}")
    JoinTokens(JOIN_SECRET.encode()).verify(created["join_token"], iid, time.time())
    iv = await client.get(iid)
    assert iv.plan.name == "frontend-engineer" and iv.candidate.name == "Lin" and iv.created_by == "redis:team-a"
    assert iv.team == "team-a"  # the command's team: the team-a API key sees it

    # At-least-once delivery: the same command again applies nothing new.
    again = await command(r, prefix, replies, id="cmd-1", type="create",
                          request=json.dumps({"template": "frontend-engineer", "candidate": {"name": "Lin"}}))
    assert again["interview_id"] == iid

    other = await command(r, prefix, replies, id="cmd-x", type="end", team="hr",
                          request=json.dumps({"interview_id": iid}))
    assert other["ok"] is False and other["code"] == "NOT_FOUND"  # another team's command cannot end it
    ended = await command(r, prefix, replies, id="cmd-2", type="end", team="team-a",
                          request=json.dumps({"interview_id": iid, "reason": "withdrawn"}))
    assert ended == {"command_id": "cmd-2", "ok": True, "interview_id": iid, "status": "INTERVIEW_ENDED"}
    assert (await client.get(iid)).end_reason == "withdrawn"
    again = await command(r, prefix, replies, id="cmd-3", type="end", team="team-a", request=json.dumps({"interview_id": iid}))
    assert again["ok"] is True  # ending an ended interview is idempotent on this path

    pending = await r.xpending(f"{prefix}commands", "orchestrators")
    assert pending["pending"] == 0  # every command acknowledged


async def test_bad_commands_get_error_replies_and_the_consumer_goes_on(orchestrator, store: InterviewStore, prefix: str):
    r = store.redis
    replies = f"{prefix}replies:errors"
    bad_json = await command(r, prefix, replies, id="bad-1", type="create", request="{not json")
    assert bad_json["ok"] is False and bad_json["code"] == "INVALID_ARGUMENT"
    bad_plan = await command(r, prefix, replies, id="bad-2", type="create", request=json.dumps({"template": "nope"}))
    assert bad_plan["ok"] is False and bad_plan["code"] == "NOT_FOUND" and "backend-engineer" in bad_plan["error"]
    unknown = await command(r, prefix, replies, id="bad-3", type="end",
                            request=json.dumps({"interview_id": "iv_00000000000000000000"}))
    assert unknown["ok"] is False and unknown["code"] == "NOT_FOUND"
    kind = await command(r, prefix, replies, id="bad-4", type="explode")
    assert kind["ok"] is False and "create, end or reissue" in kind["error"]

    # A reply stream outside <prefix>replies: is refused (the command cannot make us write any key).
    await r.xadd(f"{prefix}commands", {"id": "bad-5", "type": "create", "reply_to": "victim",
                                       "request": json.dumps({"template": "demo"})})
    ok = await command(r, prefix, replies, id="after", type="create", request=json.dumps({"template": "demo"}))
    assert ok["ok"] is True  # the consumer went on
    assert not await r.exists("victim")
    assert "reply_to" in orchestrator.logs()


async def test_delete_erases_the_command_path_and_tokens_are_not_kept(orchestrator, store: InterviewStore, prefix: str):
    """GDPR: deleting an interview also erases its reply entries and stored replies; applied
    commands leave the command stream; the stored copy of a reply never holds the join token."""
    r = store.redis
    replies = f"{prefix}replies:gdpr"
    created = await command(r, prefix, replies, id="gdpr-1", type="create", team="team-a",
                            request=json.dumps({"template": "demo", "candidate": {"name": "Eve"}}))
    iid = created["interview_id"]
    assert created["join_token"]  # delivered once, in the reply
    stored = json.loads(await r.get(store.keys.command_done("gdpr-1")))
    assert "join_token" not in stored and "#token=" not in stored["join_url"]
    assert created["join_token"] not in json.dumps(stored)
    redelivered = await command(r, prefix, replies, id="gdpr-1", type="create", team="team-a",
                                request=json.dumps({"template": "demo", "candidate": {"name": "Eve"}}))
    assert redelivered["interview_id"] == iid and "join_token" not in redelivered
    fresh = await command(r, prefix, replies, id="gdpr-2", type="reissue", team="team-a",
                          request=json.dumps({"interview_id": iid}))
    assert fresh["ok"] and fresh["join_url"].endswith(f"#token={fresh['join_token']}")
    assert await r.xlen(f"{prefix}commands") == 0  # applied commands are removed (with the candidate's data)
    assert await r.xlen(replies) == 3
    await store.delete(iid)
    assert await r.xlen(replies) == 0
    assert not await r.exists(store.keys.command_done("gdpr-1"), store.keys.command_done("gdpr-2"),
                              store.keys.command_traces(iid))
