"""Evaluation as a durable job in Redis: PENDING -> RUNNING -> DONE | FAILED, claimed by one
instance at a time, surviving a crash of the instance running it.

Layout (P = the store's key prefix, ID = an interview id):
  P i:ID:evaluation   hash   the job: status, owner, lease_until, attempts, force, supersedes,
                             evaluation_id, event_id (newest stored), done_event_id (newest DONE),
                             reason. Listed among the interview's keys, so deleting the interview
                             deletes it (the evaluations themselves live in P i:ID:events).
  P evaluations:due   zset   ID -> when to look at the job (ms): now for PENDING, the lease's end
                             for RUNNING (a crashed runner's job is found again when its lease ends)
The trigger: a consumer group ("evaluator") on the global lifecycle stream turns every ENDED event
into a PENDING job (unless the interview's config says evaluate_at_end = false). Entries are acked
after the job is queued; an instance that died holding some has them claimed by another after
CLAIM_IDLE_MS, so an end is never missed.

Storing the result and finishing the job are one Lua script: the Evaluation event is appended to
the interview's stream only by the runner that still holds the job, so a runner that lost its lease
(another instance took over) writes nothing.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

import redis.exceptions

from interview.v1 import interviews_pb2, session_pb2
from services.common.tasks import OwnedTask, cancel_and_wait
from services.orchestrator.evaluation.evaluator import EvaluationFailed, Generate, Settings, evaluate
from services.orchestrator.evaluation.material import Material
from services.orchestrator.store.store import EVENTS_MAXLEN, InterviewStore, NotFound, parse_event, timestamp

log = logging.getLogger("evaluation.jobs")

GROUP = "evaluator"
CLAIM_IDLE_MS = 30_000
MAX_ATTEMPTS = 3  # a job that keeps crashing its runner is stored as FAILED after this many claims
PENDING, RUNNING, DONE, FAILED = "PENDING", "RUNNING", "DONE", "FAILED"
STATUS = {PENDING: interviews_pb2.EVALUATION_PENDING, RUNNING: interviews_pb2.EVALUATION_RUNNING,
          DONE: interviews_pb2.EVALUATION_DONE, FAILED: interviews_pb2.EVALUATION_FAILED}

# KEYS: job, due, state. ARGV: iid, now_ms, force ("1"), ttl_ms
ENQUEUE = """
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) return 'gone' end
local st = redis.call('HGET', KEYS[1], 'status')
if st == 'PENDING' or st == 'RUNNING' then return st end
if st and ARGV[3] ~= '1' then return st end
redis.call('HSET', KEYS[1], 'status', 'PENDING', 'force', ARGV[3], 'requested_at', ARGV[2],
           'supersedes', redis.call('HGET', KEYS[1], 'evaluation_id') or '', 'reason', '')
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 'queued'
"""

# KEYS: job, due, state. ARGV: iid, owner, now_ms, lease_ms
CLAIM = """
if redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('ZREM', KEYS[2], ARGV[1]) redis.call('DEL', KEYS[1]) return 'gone'
end
local st = redis.call('HGET', KEYS[1], 'status')
local now = tonumber(ARGV[3])
if st == 'PENDING' or (st == 'RUNNING' and tonumber(redis.call('HGET', KEYS[1], 'lease_until') or '0') < now) then
  redis.call('HSET', KEYS[1], 'status', 'RUNNING', 'owner', ARGV[2], 'lease_until', now + tonumber(ARGV[4]))
  redis.call('HINCRBY', KEYS[1], 'attempts', 1)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
  return 'claimed'
end
if st == 'RUNNING' then return 'busy' end
redis.call('ZREM', KEYS[2], ARGV[1])
return st or 'none'
"""

# KEYS: job, due. ARGV: iid, owner, now_ms, lease_ms
RENEW = """
if redis.call('HGET', KEYS[1], 'status') ~= 'RUNNING' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', tonumber(ARGV[3]) + tonumber(ARGV[4]))
redis.call('ZADD', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
return 1
"""

# KEYS: job, due, state, events. ARGV: iid, owner, status, evaluation_id, reason, event bytes, maxlen, ttl_ms
FINISH = """
if redis.call('EXISTS', KEYS[3]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) redis.call('DEL', KEYS[1]) return {0, 'gone'} end
if redis.call('HGET', KEYS[1], 'status') ~= 'RUNNING' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then
  return {0, 'lost'}
end
local eid = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'type', 'evaluation', 'data', ARGV[6])
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'evaluation_id', ARGV[4], 'reason', ARGV[5], 'event_id', eid, 'owner', '')
if ARGV[3] == 'DONE' then redis.call('HSET', KEYS[1], 'done_event_id', eid) end
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[8]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[8]) redis.call('PEXPIRE', KEYS[4], ARGV[8])
end
return {1, eid}
"""


@dataclass
class Job:
    status: str = ""
    attempts: int = 0
    evaluation_id: str = ""
    event_id: str = ""
    done_event_id: str = ""
    supersedes: str = ""
    reason: str = ""


def _now_ms() -> int:
    return int(time.time() * 1000)


class NotEnded(Exception):
    """Evaluate was called before the interview ended."""


class EvaluationJobs:
    """Queue, claim, run and store evaluations; `start()` runs the trigger and the worker."""

    def __init__(self, store: InterviewStore, generate: Generate, instance: str, *,
                 settings: Settings = Settings(), lease_ms: int = 60_000, poll_s: float = 1.0,
                 concurrency: int = 2):
        self.store = store
        self.generate = generate
        self.instance = instance
        self.settings = settings
        self.lease_ms = lease_ms
        self.poll_s = poll_s
        self.redis = store.redis
        self.due_key = f"{store.keys.prefix}evaluations:due"
        self._enqueue = self.redis.register_script(ENQUEUE)
        self._claim = self.redis.register_script(CLAIM)
        self._renew = self.redis.register_script(RENEW)
        self._finish = self.redis.register_script(FINISH)
        self.concurrency = concurrency
        self._running: set[asyncio.Task[None]] = set()
        self._loop = OwnedTask(self._work, "evaluation-jobs")
        self._stopping = asyncio.Event()

    def job_key(self, iid: str) -> str:
        return self.store.keys.evaluation(iid)

    def _keys(self, iid: str) -> list[str]:
        return [self.job_key(iid), self.due_key, self.store.keys.state(iid)]

    # ---- the job ----

    async def enqueue(self, iid: str, *, force: bool = False) -> str:
        """Queue an evaluation: 'queued', or the status that made it unnecessary ('PENDING',
        'RUNNING', and without force 'DONE' / 'FAILED'); 'gone' for a deleted interview."""
        ttl = self.store.ttl_ms
        return (await self._enqueue(keys=self._keys(iid), args=[iid, _now_ms(), "1" if force else "0", ttl])).decode()

    async def job(self, iid: str) -> Job:
        raw = {k.decode(): v.decode() for k, v in (await self.redis.hgetall(self.job_key(iid))).items()}
        return Job(raw.get("status", ""), int(raw.get("attempts", 0)), raw.get("evaluation_id", ""),
                   raw.get("event_id", ""), raw.get("done_event_id", ""), raw.get("supersedes", ""),
                   raw.get("reason", ""))

    async def claim(self, iid: str) -> str:
        return (await self._claim(keys=self._keys(iid), args=[iid, self.instance, _now_ms(), self.lease_ms])).decode()

    async def stored(self, iid: str, event_id: str) -> interviews_pb2.Evaluation | None:
        if not event_id:
            return None
        rows = await self.redis.xrange(self.store.keys.events(iid), event_id, event_id)
        return parse_event(rows[0][0], rows[0][1], iid).evaluation if rows else None

    async def latest(self, iid: str) -> interviews_pb2.Evaluation | None:
        """The newest DONE evaluation, else the newest stored one (FAILED), else None."""
        job = await self.job(iid)
        return await self.stored(iid, job.done_event_id) or await self.stored(iid, job.event_id)

    async def load(self, iid: str) -> Material:
        snap = await self.store.get(iid)
        entries: list[interviews_pb2.TranscriptEntry] = []
        while True:
            page = await self.store.transcript(iid, entries[-1].sequence if entries else 0, 1000)
            entries += page
            if len(page) < 1000:
                break
        events: list[interviews_pb2.Event] = []
        start = "-"
        while True:
            rows = await self.redis.xrange(self.store.keys.events(iid), start, "+", count=1000)
            events += [parse_event(sid, fields, iid) for sid, fields in rows]
            if len(rows) < 1000:
                break
            start = "(" + rows[-1][0].decode()
        return Material.of(snap.interview, entries, events)

    async def run(self, iid: str) -> interviews_pb2.Evaluation | None:
        """Run a job this instance has claimed; store the result (DONE or FAILED). None when the
        interview was deleted meanwhile or another instance took the job over."""
        job = await self.job(iid)
        renew = OwnedTask(lambda: self._keep_lease(iid), f"evaluation-lease-{iid}")
        renew.start()
        try:
            try:
                if job.attempts > MAX_ATTEMPTS:
                    raise EvaluationFailed(f"gave up after {job.attempts - 1} attempts that did not finish "
                                           "(see the orchestrator's logs)")
                material = await self.load(iid)
                result = await evaluate(material, self.generate, self.settings)
            except EvaluationFailed as exc:
                result = interviews_pb2.Evaluation(
                    interview_id=iid, kind=interviews_pb2.EVALUATION_RUBRIC, status=interviews_pb2.EVALUATION_FAILED,
                    reason=str(exc), advisory=True, created_at=timestamp(time.time()))
                log.warning("evaluation failed", extra={"interview_id": iid, "error": str(exc)})
        except NotFound:
            await self.redis.zrem(self.due_key, iid)
            return None
        finally:
            await renew.stop()
        if not result.evaluation_id:
            result.evaluation_id = f"ev_{uuid.uuid4().hex[:16]}"
        result.supersedes = job.supersedes
        status = FAILED if result.status == interviews_pb2.EVALUATION_FAILED else DONE
        event = interviews_pb2.Event(interview_id=iid, time=timestamp(time.time()), evaluation=result)
        ok, detail = await self._finish(
            keys=[*self._keys(iid), self.store.keys.events(iid)],
            args=[iid, self.instance, status, result.evaluation_id, result.reason[:500], event.SerializeToString(),
                  EVENTS_MAXLEN, self.store.ttl_ms])
        if not ok:
            log.info("evaluation result dropped", extra={"interview_id": iid, "why": detail.decode()})
            return None
        log.info("evaluation stored", extra={"interview_id": iid, "status": status, "kind": result.kind,
                                             "evaluation_id": result.evaluation_id})
        return result

    async def _keep_lease(self, iid: str) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            if not await self._renew(keys=[self.job_key(iid), self.due_key],
                                     args=[iid, self.instance, _now_ms(), self.lease_ms]):
                log.warning("evaluation lease lost", extra={"interview_id": iid})
                return

    async def evaluate_now(self, iid: str, *, force: bool, wait_s: float) -> interviews_pb2.Evaluation:
        """Evaluate's behaviour: the stored evaluation unless `force`; else queue, run it here if
        no one else is, and wait up to wait_s. Still running then: a RUNNING/PENDING placeholder."""
        snap = await self.store.get(iid)
        if snap.interview.status != session_pb2.INTERVIEW_ENDED:
            raise NotEnded(f"interview {iid} has not ended; call Evaluate after EndInterview")
        if not force:
            stored = await self.latest(iid)
            if stored is not None:
                return stored
        await self.enqueue(iid, force=force)
        deadline = time.monotonic() + wait_s
        while True:
            if await self.claim(iid) == "claimed":
                result = await self.run(iid)
                if result is not None:
                    return result
            job = await self.job(iid)
            if job.status in (DONE, FAILED):
                stored = await self.stored(iid, job.event_id)
                if stored is not None:
                    return stored
            if time.monotonic() >= deadline:
                return interviews_pb2.Evaluation(interview_id=iid, status=STATUS.get(job.status, 0), advisory=True,
                                                 supersedes=job.supersedes,
                                                 reason="still running; call Evaluate again (without force) later")
            await asyncio.sleep(0.2)

    # ---- the trigger and the worker ----

    def start(self) -> None:
        self._stopping.clear()
        self._loop.start()

    async def stop(self) -> None:
        """Let the worker loop finish its current short read (cancelling redis-py inside a
        blocking XREADGROUP can leave the read hanging), then cancel what is left."""
        self._stopping.set()
        task = self._loop.task
        if task is not None:
            await asyncio.wait({task}, timeout=self.poll_s * 3 + 1)
        await self._loop.stop()
        for job in list(self._running):
            await cancel_and_wait(job)

    async def _work(self) -> None:
        await self._ensure_group()
        me = asyncio.current_task()
        while not self._stopping.is_set():
            try:
                await self._take_ended()
                await self._run_due()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the worker must outlive one bad job
                if me is not None and me.cancelling():
                    # redis-py may turn a cancelled blocking read into a connection error: the
                    # stop request still stands
                    raise asyncio.CancelledError from exc
                if isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
                    log.warning("evaluation worker: store unreachable", extra={"error": str(exc)})
                else:
                    log.exception("evaluation worker error")
                await asyncio.sleep(self.poll_s)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.store.keys.lifecycle, GROUP, id="$", mkstream=True)
        except redis.exceptions.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _take_ended(self) -> None:
        key = self.store.keys.lifecycle
        _, stale, _ = await self.redis.xautoclaim(key, GROUP, self.instance, CLAIM_IDLE_MS, "0-0", count=50)
        fresh = await self.redis.xreadgroup(GROUP, self.instance, {key: ">"}, count=50,
                                            block=int(self.poll_s * 1000))
        rows = list(stale) + [row for _, rs in fresh for row in rs]
        for sid, fields in rows:
            if not fields:  # deleted from the stream meanwhile
                await self.redis.xack(key, GROUP, sid)
                continue
            event = parse_event(sid, fields)
            if event.WhichOneof("payload") == "lifecycle" and event.lifecycle.kind == interviews_pb2.Lifecycle.ENDED:
                await self._on_ended(event.interview_id)
            await self.redis.xack(key, GROUP, sid)

    async def _on_ended(self, iid: str) -> None:
        try:
            snap = await self.store.get(iid)
        except NotFound:
            return
        cfg = snap.interview.config
        if cfg.HasField("evaluate_at_end") and not cfg.evaluate_at_end:
            return
        await self.enqueue(iid)

    async def _run_due(self) -> None:
        self._running = {t for t in self._running if not t.done()}
        free = self.concurrency - len(self._running)
        if free <= 0:
            return
        ids = await self.redis.zrangebyscore(self.due_key, "-inf", _now_ms(), start=0, num=free)
        for raw in ids:
            iid = raw.decode()
            if await self.claim(iid) == "claimed":
                task = asyncio.create_task(self._run_job(iid), name=f"evaluation-{iid}")
                self._running.add(task)

    async def _run_job(self, iid: str) -> None:
        try:
            await self.run(iid)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - left RUNNING: another claim retries after the lease
            log.exception("evaluation job crashed", extra={"interview_id": iid})
