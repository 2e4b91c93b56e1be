"""The interview store on Redis: snapshots, event streams, transcript, control stream, owner lease.

Layout (prefix P, default "iv:"; ID = an interview id):
  P i:ID             hash    snapshot: proto (Interview), ver, status, seq, epoch, owner, control_cursor
  P i:ID:events      stream  every event of the interview (WatchEvents reads it)
  P i:ID:transcript  stream  transcript entries with stream id 0-<sequence> (GetTranscript pages it)
  P i:ID:entries     hash    entry_id -> "sequence event_id" (idempotent transcript writes)
  P i:ID:control     stream  UPDATE_CONFIG / SET_PHASE / END / code events for the session owner
  P i:ID:lease       string  "owner|epoch" with a TTL: who runs the live session
  P i:ID:cmds        set     where the command path wrote about it (reply entries, stored replies): erased with it
  P i:ID:inflight    string  the owner's in-flight turns (GetTranscriptResponse of incomplete entries)
  P i:ID:evaluation  hash    the evaluation job (evaluation/jobs.py); the evaluations are events
  P index:all, P index:s:N   sorted sets (score 0, lexicographic = creation order) for ListInterviews
  P inflight         sorted set: interviews with an in-flight marker, score = its last change (ms)
  P lifecycle        stream  created / started / ended / deleted of every interview
  P req:HASH         string  "ID|fingerprint" for CreateInterview request ids

Every write is one Lua script (scripts.py): a state change and its events land together or not at
all. The conversation loop (next issue) uses: acquire_lease / renew_lease / release_lease,
read_control + ack_control, append_transcript (through TranscriptOutbox), append_event, update.
"""
from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import redis.asyncio as aioredis
import redis.exceptions
from google.protobuf import timestamp_pb2

from interview.v1 import interviews_pb2, session_pb2
from services.common import errors
from services.orchestrator.store import scripts

STATUSES = (session_pb2.INTERVIEW_CREATED, session_pb2.INTERVIEW_ACTIVE, session_pb2.INTERVIEW_ENDED)
ID_RE = re.compile(r"^iv_[0-9a-f]{20}$")
EVENTS_MAXLEN = 100_000
LIFECYCLE_MAXLEN = 1_000_000


# Redis unreachable or restarting (AOF loading): worth waiting for (the outbox, the session's
# loops and the command consumer retry these; API calls answer UNAVAILABLE).
TRANSIENT = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
             OSError)


class StoreError(errors.ServiceError):
    """A refused store operation; the message is meant for a person."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class NotFound(StoreError, errors.NotFound):
    code = grpc.StatusCode.NOT_FOUND


class Conflict(StoreError):
    """The snapshot changed between read and write (retry) or the id exists."""

    code = grpc.StatusCode.ABORTED


class RequestReused(Conflict):
    """A CreateInterview request_id was already used for a different request."""

    code = grpc.StatusCode.ALREADY_EXISTS


class Fenced(StoreError):
    """The writer's owner epoch is stale: another instance owns the session now."""


class LinkInUse(StoreError):
    """A join with a link whose session is still live (reconnects use the session credential)."""


LINK_IN_USE = ("this join link is already in use by a live session; reconnect with its session credential "
               "(the candidate page keeps it), wait until that session has ended, or ask for a new link")


class LeaseHeld(StoreError):
    def __init__(self, holder: str):
        self.holder = holder
        super().__init__(f"the session is owned by {holder}")


def team_of(iv: interviews_pb2.Interview) -> str:
    """The team an interview belongs to (interviews created before teams: their creator's key
    name, which was the team)."""
    return iv.team or iv.created_by


def new_interview_id(now: float) -> str:
    """Time-ordered (12 hex digits of ms) + 8 random hex digits: lexicographic = creation order."""
    return f"iv_{int(now * 1000):012x}{secrets.token_hex(4)}"


def timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


@dataclass(frozen=True)
class Keys:
    prefix: str

    def state(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}"

    def events(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}:events"

    def transcript(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}:transcript"

    def entries(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}:entries"

    def control(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}:control"

    def command_traces(self, iid: str) -> str:
        """The interview's command path traces: "<reply stream> <entry id>" and "done <key>"."""
        return f"{self.prefix}i:{iid}:cmds"

    def lease(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}:lease"

    def inflight(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}:inflight"

    def evaluation(self, iid: str) -> str:
        return f"{self.prefix}i:{iid}:evaluation"

    def interview_keys(self, iid: str) -> list[str]:
        """Every key holding this interview's data, state first (what Delete erases)."""
        return [self.state(iid), self.events(iid), self.transcript(iid), self.entries(iid),
                self.control(iid), self.lease(iid), self.inflight(iid), self.evaluation(iid),
                self.command_traces(iid)]

    @property
    def inflight_index(self) -> str:
        """Interviews with an in-flight marker, scored by its last change (ms): the sweeper's list."""
        return f"{self.prefix}inflight"

    def index(self, status: int = 0) -> str:
        return f"{self.prefix}index:s:{status}" if status else f"{self.prefix}index:all"

    @property
    def lifecycle(self) -> str:
        return f"{self.prefix}lifecycle"

    def request(self, caller: str, request_id: str) -> str:
        return f"{self.prefix}req:" + hashlib.sha256(f"{caller}\0{request_id}".encode()).hexdigest()[:32]

    @property
    def commands(self) -> str:
        return f"{self.prefix}commands"

    def command_done(self, command_id: str) -> str:
        return f"{self.prefix}cmd:" + hashlib.sha256(command_id.encode()).hexdigest()[:32]

    @property
    def reply_prefix(self) -> str:
        return f"{self.prefix}replies:"


@dataclass
class Snapshot:
    interview: interviews_pb2.Interview
    ver: int
    seq: int
    epoch: int
    owner: str
    control_cursor: str
    created_by: str
    link_gen: int = 0  # join links and session credentials of an older generation are revoked
    link: str = ""  # the nonce of the join link the latest session was joined with


@dataclass
class Change:
    """What an update produces: events to append (flags "c" also to control, "l" also to lifecycle)."""

    events: list[tuple[interviews_pb2.Event, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Appended:
    sequence: int
    event_id: str
    duplicate: bool  # the entry id had been written before: nothing new was written


def payload_type(event: interviews_pb2.Event) -> str:
    return event.WhichOneof("payload") or "unknown"


def parse_event(stream_id: bytes | str, fields: dict[bytes, bytes], interview_id: str = "") -> interviews_pb2.Event:
    event = interviews_pb2.Event.FromString(fields[b"data"])
    event.event_id = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    if b"seq" in fields:
        event.transcript.sequence = int(fields[b"seq"])
    if not event.interview_id:
        event.interview_id = fields.get(b"interview_id", interview_id.encode()).decode()
    return event


class InterviewStore:
    def __init__(self, client: aioredis.Redis, prefix: str = "iv:", retention_s: int = 0,
                 now: Callable[[], float] = time.time):
        self.redis = client
        self.keys = Keys(prefix)
        self.ttl_ms = str(retention_s * 1000)
        self._request_ttl_ms = str((retention_s or 7 * 24 * 3600) * 1000)
        self.now = now
        self._create = client.register_script(scripts.CREATE)
        self._commit = client.register_script(scripts.COMMIT)
        self._append_transcript = client.register_script(scripts.APPEND_TRANSCRIPT)
        self._append_event = client.register_script(scripts.APPEND_EVENT)
        self._acquire = client.register_script(scripts.ACQUIRE_LEASE)
        self._renew = client.register_script(scripts.RENEW_LEASE)
        self._release = client.register_script(scripts.RELEASE_LEASE)
        self._ack = client.register_script(scripts.ACK_CONTROL)
        self._delete = client.register_script(scripts.DELETE)
        self._set_inflight = client.register_script(scripts.SET_INFLIGHT)
        self._clear_inflight = client.register_script(scripts.CLEAR_INFLIGHT)
        self._last_event = client.register_script(scripts.LAST_EVENT)
        self._bump_link_gen = client.register_script(scripts.BUMP_LINK_GEN)

    def event(self, interview_id: str, **payload: object) -> interviews_pb2.Event:
        """An Event stamped now, e.g. store.event(iid, lifecycle=Lifecycle(kind=...))."""
        return interviews_pb2.Event(interview_id=interview_id, time=timestamp(self.now()), **payload)  # type: ignore[arg-type]

    # ---- snapshots ----

    async def create(self, interview: interviews_pb2.Interview, *, created_by: str,
                     request_id: str = "", fingerprint: str = "") -> tuple[interviews_pb2.Interview, bool]:
        """Store a new interview (and its CREATED event). With a request id, a repeat of the same
        request returns the first interview (second value True); other content raises Conflict."""
        k = self.keys
        iid = interview.id
        req_key = k.request(created_by, request_id) if request_id else k.request("", "-")
        event = self.event(iid, lifecycle=interviews_pb2.Lifecycle(kind=interviews_pb2.Lifecycle.CREATED))
        ok, detail = await self._create(
            keys=[k.state(iid), k.events(iid), k.lifecycle, k.index(), k.index(interview.status), req_key],
            args=[iid, interview.SerializeToString(), interview.status, self.ttl_ms, EVENTS_MAXLEN, LIFECYCLE_MAXLEN,
                  event.SerializeToString(), f"{iid}|{fingerprint}" if request_id else "", created_by,
                  self._request_ttl_ms, team_of(interview)])
        if ok:
            return interview, False
        if not detail:
            raise Conflict(f"interview id {iid} already exists")
        prev_id, _, prev_fp = detail.decode().partition("|")
        if prev_fp != fingerprint:
            raise RequestReused(f"request_id {request_id!r} was already used for a different request "
                           f"(interview {prev_id}); use a new request_id")
        return (await self.get(prev_id)).interview, True

    async def get(self, iid: str) -> Snapshot:
        raw = await self.redis.hgetall(self.keys.state(iid))
        if not raw or b"proto" not in raw:
            raise NotFound(f"interview {iid} not found")
        return Snapshot(interview=interviews_pb2.Interview.FromString(raw[b"proto"]), ver=int(raw[b"ver"]),
                        seq=int(raw.get(b"seq", 0)), epoch=int(raw.get(b"epoch", 0)),
                        owner=raw.get(b"owner", b"").decode(),
                        control_cursor=raw.get(b"control_cursor", b"0-0").decode(),
                        created_by=raw.get(b"created_by", b"").decode(),
                        link_gen=int(raw.get(b"link_gen", 0)), link=raw.get(b"link", b"").decode())

    async def update(self, iid: str, mutate: Callable[[interviews_pb2.Interview], Change],
                     *, epoch: int | None = None, attempts: int = 20) -> tuple[interviews_pb2.Interview, list[str]]:
        """Read-modify-write with compare-and-set: `mutate` edits the Interview in place and returns
        the events to append; it may raise StoreError (e.g. a bad transition) to abort. Retried on
        concurrent changes. With `epoch`, the write is fenced (the session owner's writes)."""
        k = self.keys
        for _ in range(attempts):
            snap = await self.get(iid)
            interview = interviews_pb2.Interview()
            interview.CopyFrom(snap.interview)
            old_status = interview.status
            change = mutate(interview)
            args: list[object] = [snap.ver, interview.SerializeToString(), interview.status, self.ttl_ms, iid,
                                  EVENTS_MAXLEN, LIFECYCLE_MAXLEN, "" if epoch is None else epoch, len(change.events)]
            for ev, flags in change.events:
                args += [payload_type(ev), ev.SerializeToString(), flags]
            args.append(team_of(interview))
            result = await self._commit(
                keys=[k.state(iid), k.events(iid), k.control(iid), k.lifecycle, k.index(),
                      k.index(old_status), k.index(interview.status), k.transcript(iid), k.entries(iid)],
                args=args)
            if result[0] == 1:
                return interview, [eid.decode() for eid in result[2:]]
            if result[1] != b"conflict":
                _refused(result[1], iid, epoch)
        raise Conflict(f"interview {iid} is changing too fast; retry")

    async def list(self, status: int = 0, page_size: int = 50, after_id: str = "",
                   keep: Callable[[interviews_pb2.Interview], bool] | None = None
                   ) -> tuple[list[interviews_pb2.Interview], str]:
        """A page in creation order of the interviews `keep` accepts (a team's); ids whose state
        expired (retention) are dropped from the index."""
        index = self.keys.index(status)
        start = f"({after_id}" if after_id else "-"
        out: list[interviews_pb2.Interview] = []
        last = after_id
        while len(out) < page_size:
            ids = await self.redis.zrange(index, start, "+", bylex=True, offset=0, num=page_size - len(out))
            if not ids:
                return out, ""
            protos = await self.redis.eval(
                "local r = {} for i, k in ipairs(KEYS) do r[i] = redis.call('HGET', k, 'proto') or '' end return r",
                len(ids), *[self.keys.state(i.decode()) for i in ids])
            stale = [i for i, p in zip(ids, protos) if not p]
            if stale:
                await self.redis.zrem(index, *stale)
            page = [interviews_pb2.Interview.FromString(p) for p in protos if p]
            out += [iv for iv in page if keep is None or keep(iv)]
            last = ids[-1].decode()
            start = f"({last}"
        more = await self.redis.zrange(index, start, "+", bylex=True, offset=0, num=1)
        return out, last if more else ""

    async def delete(self, iid: str) -> int:
        """Erase every key of the interview; returns how many keys existed. Raises NotFound."""
        k = self.keys
        req, proto = await self.redis.hmget(k.state(iid), "req", "proto")
        traces = await self.redis.smembers(k.command_traces(iid))
        data_keys = k.interview_keys(iid) + ([req.decode()] if req else [])
        index_keys = [k.index()] + [k.index(s) for s in STATUSES] + [k.inflight_index]
        event = self.event(iid, lifecycle=interviews_pb2.Lifecycle(kind=interviews_pb2.Lifecycle.DELETED))
        n = await self._delete(keys=[*data_keys, *index_keys, k.lifecycle],
                               args=[iid, len(data_keys), len(index_keys), event.SerializeToString(), LIFECYCLE_MAXLEN,
                                     team_of(interviews_pb2.Interview.FromString(proto)) if proto else ""])
        if n < 0:
            raise NotFound(f"interview {iid} not found")
        if traces:  # the command path's replies and stored replies that name the interview
            pipe = self.redis.pipeline(transaction=False)
            by_command: dict[str, set[bytes]] = {}
            for trace in traces:
                where, _, what = trace.decode().partition(" ")
                if where == "done":
                    pipe.delete(what)
                elif where.startswith(k.reply_prefix) and what.startswith("cmd:"):
                    by_command.setdefault(where, set()).add(what[4:].encode())
                elif where.startswith(k.reply_prefix):  # an entry id (traces written before 2026-12-07)
                    pipe.xdel(where, what)
            for stream, commands in by_command.items():  # reply streams are capped (commands.REPLY_MAXLEN)
                doomed = [sid for sid, f in await self.redis.xrange(stream) if f.get(b"command_id") in commands]
                if doomed:
                    pipe.xdel(stream, *doomed)
            await pipe.execute()
        return int(n)

    async def remember_command(self, iid: str, traces: list[str]) -> None:
        """Record where the command path wrote about this interview, so Delete erases it."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(self.keys.command_traces(iid), *traces)
        if self.ttl_ms != "0":
            pipe.pexpire(self.keys.command_traces(iid), int(self.ttl_ms))
        await pipe.execute()

    # ---- events and transcript ----

    async def append_transcript(self, entry: interviews_pb2.TranscriptEntry, *, epoch: int | None = None) -> Appended:
        """Write one transcript entry with the next gapless sequence number. `entry.entry_id` is the
        idempotency key: a retried write returns the first result and writes nothing."""
        if not entry.entry_id:
            raise ValueError("a transcript entry needs an entry_id (its idempotency key)")
        k = self.keys
        iid = entry.interview_id
        stored = interviews_pb2.TranscriptEntry()
        stored.CopyFrom(entry)
        stored.sequence = 0  # allocated by the script; readers fill it in from the stream
        event = self.event(iid, transcript=stored)
        result = await self._append_transcript(
            keys=[k.state(iid), k.events(iid), k.transcript(iid), k.entries(iid)],
            args=[entry.entry_id, event.SerializeToString(), stored.SerializeToString(), self.ttl_ms,
                  EVENTS_MAXLEN, "" if epoch is None else epoch])
        if result[0] == 0:
            _refused(result[1], iid, epoch)
        return Appended(int(result[1]), result[2].decode(), result[0] == 2)

    async def append_event(self, event: interviews_pb2.Event, *, epoch: int | None = None) -> str:
        """An event without a state change (observation, turn metrics, session joined/left)."""
        k = self.keys
        iid = event.interview_id
        result = await self._append_event(
            keys=[k.state(iid), k.events(iid)],
            args=[payload_type(event), event.SerializeToString(), self.ttl_ms, EVENTS_MAXLEN,
                  "" if epoch is None else epoch])
        if result[0] == 0:
            _refused(result[1], iid, epoch)
        return result[1].decode()

    async def transcript(self, iid: str, after_sequence: int = 0,
                         count: int = 100) -> list[interviews_pb2.TranscriptEntry]:
        rows = await self.redis.xrange(self.keys.transcript(iid), f"(0-{after_sequence}" if after_sequence else "-",
                                       "+", count=count)
        return [_transcript_entry(sid, fields) for sid, fields in rows]

    async def transcript_tail(self, iid: str, count: int) -> list[interviews_pb2.TranscriptEntry]:
        """The newest `count` entries, oldest first (one XREVRANGE)."""
        rows = await self.redis.xrevrange(self.keys.transcript(iid), "+", "-", count=count)
        return [_transcript_entry(sid, fields) for sid, fields in reversed(rows)]

    async def last_event(self, iid: str, payload: str, *, max_scan: int = 20_000) -> interviews_pb2.Event | None:
        """The interview's newest event with this payload (e.g. "phase_changed"), searched on the
        server among the newest `max_scan` events; None if there is none among them."""
        row = await self._last_event(keys=[self.keys.events(iid)], args=[payload, min(200, max_scan), max_scan])
        if not row:
            return None
        sid, flat = row
        return parse_event(sid, dict(zip(flat[::2], flat[1::2])), iid)

    def stream_key(self, iid: str) -> str:
        """The events stream of an interview, or the global lifecycle stream for ""."""
        return self.keys.events(iid) if iid else self.keys.lifecycle

    async def last_event_id(self, key: str) -> str:
        rows = await self.redis.xrevrange(key, "+", "-", count=1)
        return rows[0][0].decode() if rows else "0-0"

    async def read_lifecycle(self, after: str, team: str | None, *, block_ms: int | None = None,
                             count: int = 100) -> tuple[list[interviews_pb2.Event], str]:
        """Lifecycle events after `after` of one team's interviews (None: all), and the position
        reached (past events of other teams too, so a reader never reads them again)."""
        reply = await self.redis.xread({self.keys.lifecycle: after}, count=count, block=block_ms)
        out, position = [], after
        for _, rows in reply:
            for sid, fields in rows:
                position = sid.decode()
                entry_team = fields.get(b"team")
                if entry_team is None:  # written before teams: the interview's own, while it exists
                    try:
                        entry_team = team_of((await self.get(fields.get(b"interview_id", b"").decode())).interview).encode()
                    except NotFound:
                        entry_team = b""
                if team is None or entry_team.decode() == team:
                    out.append(parse_event(sid, fields))
        return out, position

    async def read_events(self, key: str, after: str, *, block_ms: int | None = None,
                          count: int = 100) -> list[interviews_pb2.Event]:
        """Events after stream id `after` (XREAD; blocks up to block_ms when there are none)."""
        reply = await self.redis.xread({key: after}, count=count, block=block_ms)
        return [parse_event(sid, fields) for _, rows in reply for sid, fields in rows]

    # ---- owner lease, fencing, control stream (used by the session loop) ----

    async def acquire_lease(self, iid: str, owner: str, ttl_ms: int, *, force: bool = False, link: str = "") -> int:
        """Become the session owner; returns the fencing epoch. With `link` (a join link's nonce) it
        is refused (LinkInUse) while a session joined with the same link holds the lease. Raises
        LeaseHeld or NotFound."""
        k = self.keys
        result = await self._acquire(keys=[k.state(iid), k.lease(iid)],
                                     args=[owner, ttl_ms, "1" if force else "0", link])
        if result[0] == 1:
            return int(result[1])
        if result[1] == b"missing":
            raise NotFound(f"interview {iid} not found")
        if result[1] == b"link_in_use":
            raise LinkInUse(LINK_IN_USE)
        raise LeaseHeld(result[1].decode())

    async def link_in_use(self, iid: str, link: str) -> bool:
        """A session joined with this link holds the lease (checked again atomically at acquire)."""
        lease, current = await self.redis.eval(
            "return {redis.call('GET', KEYS[1]) or '', redis.call('HGET', KEYS[2], 'link') or ''}",
            2, self.keys.lease(iid), self.keys.state(iid))
        return bool(lease) and current.decode() == link

    async def revoke_links(self, iid: str) -> int:
        """Bump the link generation: every join link and session credential issued so far stops
        working. Returns the new generation; NotFound for an unknown interview."""
        gen = int(await self._bump_link_gen(keys=[self.keys.state(iid)]))
        if gen < 0:
            raise NotFound(f"interview {iid} not found")
        return gen

    async def renew_lease(self, iid: str, owner: str, epoch: int, ttl_ms: int) -> bool:
        """False when the lease was lost (taken over, or forced away): stop the session. A lease
        that only expired (e.g. Redis was down longer than the TTL) is taken back if no one took
        over meanwhile (the epoch is unchanged)."""
        return bool(await self._renew(keys=[self.keys.lease(iid), self.keys.state(iid)],
                                      args=[f"{owner}|{epoch}", ttl_ms, epoch]))

    async def release_lease(self, iid: str, owner: str, epoch: int) -> bool:
        k = self.keys
        return bool(await self._release(keys=[k.state(iid), k.lease(iid)], args=[f"{owner}|{epoch}", owner]))

    async def read_control(self, iid: str, after: str, *, block_ms: int | None = None,
                           count: int = 100) -> list[tuple[str, interviews_pb2.Event]]:
        """Control entries after `after` as (control id, event); the event carries its events-stream id."""
        reply = await self.redis.xread({self.keys.control(iid): after}, count=count, block=block_ms)
        out = []
        for _, rows in reply:
            for sid, fields in rows:
                event = parse_event(fields[b"event_id"], fields, iid)
                out.append((sid.decode(), event))
        return out

    async def ack_control(self, iid: str, epoch: int, control_id: str) -> None:
        """Record that the owner applied control entries up to `control_id` (fenced)."""
        if not await self._ack(keys=[self.keys.state(iid)], args=[epoch, control_id]):
            raise Fenced(f"interview {iid}: owner epoch {epoch} is stale")

    # ---- in-flight turns (a crash never silently drops a turn) ----

    async def set_inflight(self, iid: str, epoch: int, entries: list[interviews_pb2.TranscriptEntry]) -> None:
        """Record what the owner would write if its session were cut off now: transcribed words not
        yet answered, an utterance in progress, the agent turn being spoken, entries still in the
        outbox. Every entry carries the entry_id its normal write uses, so closing them after a
        crash never duplicates one that did get written. Fenced."""
        for entry in entries:
            if not entry.HasField("end_time"):  # still going: it ends no earlier than now
                entry.end_time.CopyFrom(timestamp(self.now()))
        data = interviews_pb2.GetTranscriptResponse(entries=entries).SerializeToString() if entries else b""
        k = self.keys
        if not await self._set_inflight(keys=[k.state(iid), k.inflight(iid), k.inflight_index],
                                        args=[epoch, data, self.ttl_ms, iid, int(self.now() * 1000)]):
            raise Fenced(f"interview {iid}: owner epoch {epoch} is stale")

    async def close_inflight(self, iid: str, epoch: int) -> list[interviews_pb2.TranscriptEntry]:
        """A new owner (epoch) closes the turns its predecessor left in flight: each is appended
        (idempotent by entry_id, so a retry after another crash writes nothing twice), then the
        marker is removed. Returns the entries newly written."""
        k = self.keys
        raw = await self.redis.get(k.inflight(iid))
        if not raw:
            await self.redis.zrem(k.inflight_index, iid)  # expired with the retention, or never there
            return []
        written = []
        for entry in interviews_pb2.GetTranscriptResponse.FromString(raw).entries:
            appended = await self.append_transcript(entry, epoch=epoch)
            if not appended.duplicate:
                entry.sequence = appended.sequence
                written.append(entry)
        if not await self._clear_inflight(keys=[k.state(iid), k.inflight(iid), k.inflight_index], args=[epoch, raw, iid]):
            raise Fenced(f"interview {iid}: owner epoch {epoch} is stale")
        return written

    async def inflight_since(self, older_than_s: float) -> list[tuple[str, float]]:
        """(interview id, time of the marker's last change) of markers unchanged for older_than_s."""
        rows = await self.redis.zrangebyscore(self.keys.inflight_index, "-inf", int((self.now() - older_than_s) * 1000),
                                              start=0, num=500, withscores=True)
        return [(i.decode(), score / 1000) for i, score in rows]

    async def lease_holder(self, iid: str) -> str:
        """The live owner ("owner|epoch"), or "" when no session holds the lease."""
        raw = await self.redis.get(self.keys.lease(iid))
        return raw.decode() if raw else ""

    async def close_abandoned(self, iid: str, owner: str, ttl_ms: int) -> list[interviews_pb2.TranscriptEntry] | None:
        """Close the turns a dead owner left in flight when no session holds the lease: take the
        lease (never by force, so a live or rejoining session keeps it), close, release. None when
        a session holds the lease (it writes its own turns)."""
        if not await self.redis.exists(self.keys.inflight(iid)):
            await self.redis.zrem(self.keys.inflight_index, iid)
            return []
        try:
            epoch = await self.acquire_lease(iid, owner, ttl_ms)
        except LeaseHeld:
            return None
        try:
            return await self.close_inflight(iid, epoch)
        finally:
            await self.release_lease(iid, owner, epoch)


def _transcript_entry(stream_id: bytes, fields: dict[bytes, bytes]) -> interviews_pb2.TranscriptEntry:
    entry = interviews_pb2.TranscriptEntry.FromString(fields[b"data"])
    entry.sequence = int(stream_id.split(b"-")[1])
    return entry


def _refused(reason: bytes, iid: str, epoch: int | None) -> None:
    """Raise the error for a script's refusal ("missing" or "fenced")."""
    if reason == b"fenced":
        raise Fenced(f"interview {iid}: owner epoch {epoch} is stale")
    raise NotFound(f"interview {iid} not found")


def fingerprint(message: object) -> str:
    """A stable digest of a request, to tell a retry from a reused idempotency key."""
    data = message.SerializeToString(deterministic=True)  # type: ignore[attr-defined]
    return hashlib.sha256(data).hexdigest()[:32]
