"""The Redis command path: backends create and end interviews with XADD, without gRPC.

    XADD iv:commands * id <command id> type create|end reply_to iv:replies:<name> \
        request '<CreateInterviewRequest | EndInterviewRequest as protobuf JSON>' team <team>

Every orchestrator instance reads the stream in the consumer group "orchestrators" (at-least-once:
entries are acknowledged after the reply is written; entries a dead instance left pending are
claimed after CLAIM_IDLE_MS). Commands are applied idempotently by command id: a create uses
the command id as its request_id, an end of an already ended interview answers ok, and a
redelivered command gets the stored reply again. The reply goes to `reply_to`, which must start
with "<prefix>replies:" (so a command cannot make the orchestrator write arbitrary keys):

    {"command_id", "ok": true|false, "interview_id", "join_url", "join_token", "expires_at",
     "status", "code", "error"}

A command acts as its `team` (default "commands"): a create makes an interview of that team, an
end of another team's interview answers NOT_FOUND, as the API does for a key of another team.
Applied (and dropped) commands are deleted from the stream, so it stays short and the personal
data in create requests does not outlive the interview; the stored copy of a reply (for
redelivery) never holds the join token, and DeleteInterview erases the interview's reply entries
and stored replies (store.remember_command). A "reissue" command (ReissueJoinLinkRequest) answers
a new link, e.g. after a redelivered create that came back without its token.

This path bypasses API keys: restrict who can XADD there with a Redis ACL user (README).
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import redis.exceptions
from google.protobuf import json_format

from interview.v1 import interviews_pb2, session_pb2
from services.common.errors import FailedPrecondition, InvalidArgument, ServiceError
from services.common.tasks import OwnedTask, raise_if_cancelling
from services.orchestrator.api.interviews import InterviewsApi
from services.orchestrator.store.store import TRANSIENT, Conflict

log = logging.getLogger("commands")

GROUP = "orchestrators"
CLAIM_IDLE_MS = 60_000
REPLY_MAXLEN = 10_000
REPLY_TTL_S = 24 * 3600


class CommandConsumer:
    def __init__(self, api: InterviewsApi, consumer: str, *, block_ms: int = 2000):
        self.api = api
        self.store = api.store
        self.redis = api.store.redis
        self.keys = api.store.keys
        self.consumer = consumer
        self.block_ms = block_ms
        self._task = OwnedTask(self._run, "command-consumer")
        self.applied = 0

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.commands, GROUP, id="0", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _run(self) -> None:
        while True:
            try:
                await self._ensure_group()
                # Our own pending entries first (a crash between apply and ack), then claimed ones.
                await self._consume("0")
                claimed = await self.redis.xautoclaim(self.keys.commands, GROUP, self.consumer,
                                                      min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=50)
                for sid, fields in claimed[1]:
                    if fields:
                        await self._handle(sid, fields)
                while True:
                    if not await self._consume(">"):
                        break  # idle: loop back to claim entries other instances left behind
            except asyncio.CancelledError:
                raise
            except TRANSIENT as exc:
                raise_if_cancelling()
                log.warning("command stream: store unreachable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
            except Exception:
                log.exception("command stream consumer failed; restarting it")
                await asyncio.sleep(1.0)

    async def _consume(self, position: str) -> int:
        reply = await self.redis.xreadgroup(GROUP, self.consumer, {self.keys.commands: position}, count=20,
                                            block=self.block_ms if position == ">" else None)
        n = 0
        for _, rows in reply or []:
            for sid, fields in rows:
                await self._handle(sid, fields)
                n += 1
        return n

    async def _handle(self, sid: bytes, raw: dict[bytes, bytes]) -> None:
        fields = {k.decode(): v.decode(errors="replace") for k, v in raw.items()}
        command_id = fields.get("id", "")
        reply_to = fields.get("reply_to", "")
        if not reply_to.startswith(self.keys.reply_prefix) or not command_id or len(command_id) > 128:
            log.error("command dropped: it needs an id (<= 128 chars) and reply_to starting with "
                      f"{self.keys.reply_prefix!r}", extra={"stream_id": sid.decode(), "command_id": command_id[:128]})
            await self.redis.xack(self.keys.commands, GROUP, sid)
            await self.redis.xdel(self.keys.commands, sid)
            return
        done_key = self.keys.command_done(command_id)
        out = await self.redis.get(done_key)
        if out is None:
            reply = await self._apply(command_id, fields)
            # the stored copy (for redelivery) never holds the join token: a redelivered create
            # answers without it (send a "reissue" command for a new link)
            kept = {k: v for k, v in reply.items() if k != "join_token"}
            if "join_url" in kept:
                kept["join_url"] = kept["join_url"].partition("#")[0]
            await self.redis.set(done_key, json.dumps(kept), ex=REPLY_TTL_S)
            out = json.dumps(reply).encode()
        iid = str(json.loads(out).get("interview_id", ""))[:60]
        if iid and await self.api.exists(iid):  # what DeleteInterview erases with the interview: recorded
            # before the reply is written, so a Delete right after the caller read it cannot miss it
            await self.store.remember_command(iid, [f"{reply_to} cmd:{command_id}", f"done {done_key}"])
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(reply_to, {"reply": out, "command_id": command_id}, maxlen=REPLY_MAXLEN, approximate=True)
        pipe.expire(reply_to, REPLY_TTL_S)
        pipe.xack(self.keys.commands, GROUP, sid)
        pipe.xdel(self.keys.commands, sid)  # applied: the command (and the personal data in it) is gone
        await pipe.execute()
        self.applied += 1

    async def _apply(self, command_id: str, fields: dict[str, str]) -> dict[str, Any]:
        """Run one command; every refusal becomes an error reply (transient store errors propagate)."""
        out: dict[str, Any] = {"command_id": command_id}
        team = fields.get("team", "")[:60] or "commands"
        caller = "redis:" + team
        kind = fields.get("type", "")
        try:
            if kind == "create":
                request = json_format.Parse(fields.get("request", "{}"), interviews_pb2.CreateInterviewRequest())
                request.request_id = f"cmd:{command_id}"
                created = await self.api.create(request, caller, team)
                out.update(ok=True, interview_id=created.interview.id, join_url=created.join_url,
                           join_token=created.join_token, expires_at=created.join_token_expires_at.ToJsonString(),
                           status=session_pb2.InterviewStatus.Name(created.interview.status))
            elif kind == "reissue":
                request = json_format.Parse(fields.get("request", "{}"), interviews_pb2.ReissueJoinLinkRequest())
                link = await self.api.reissue_link(request, team)
                out.update(ok=True, interview_id=request.interview_id, join_url=link.join_url, join_token=link.join_token,
                           expires_at=link.join_token_expires_at.ToJsonString())
            elif kind == "end":
                request = json_format.Parse(fields.get("request", "{}"), interviews_pb2.EndInterviewRequest())
                try:
                    ended = await self.api.end(request, default_reason="ended_by_command", team=team)
                except FailedPrecondition:
                    ended = (await self.api.get(request.interview_id, team)).interview  # already ended: idempotent
                out.update(ok=True, interview_id=ended.id, status=session_pb2.InterviewStatus.Name(ended.status))
            else:
                raise InvalidArgument(f"type {kind[:40]!r} is not a command: use create, end or reissue", field="type")
        except json_format.ParseError as exc:
            out.update(ok=False, code="INVALID_ARGUMENT", error=f"request: not valid protobuf JSON: {exc}")
        except Conflict as exc:  # every conflict of a create command: the id or request exists
            out.update(ok=False, code="ALREADY_EXISTS", error=exc.message)
        except ServiceError as exc:
            out.update(ok=False, code=exc.code.name, error=exc.message)
        log.info("command applied", extra={"command_id": command_id, "type": kind, "ok": out["ok"]})
        return out
