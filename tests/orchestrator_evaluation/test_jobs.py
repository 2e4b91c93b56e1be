"""Evaluation as a durable Redis job on the real redis-server: queued at interview end through the
lifecycle stream, claimed by exactly one instance, taken over after a crash, stored in the event
stream, returned by Evaluate unless forced, superseded (not deleted) by a forced run, and erased
with the interview."""
from __future__ import annotations

import asyncio
import secrets
import time

import pytest
import redis.asyncio as aioredis

from interview.v1 import common_pb2, interviews_pb2
from services.orchestrator.evaluation.jobs import DONE, EvaluationJobs, NotEnded
from services.orchestrator.api.interviews import InterviewsApi
from services.orchestrator.store.store import InterviewStore
from services.orchestrator.api.tokens import JoinTokens

from tests.orchestrator_evaluation.material import (GOOD_CONSISTENCY, GOOD_FUNDAMENTALS, ScriptedGenerate, criterion,
                                                    entries_and_events, plan, run)

ANSWER = run([criterion("fundamentals", 3, GOOD_FUNDAMENTALS, GOOD_CONSISTENCY), criterion("design", None),
              criterion("coding", None)])


class Env:
    def __init__(self, url: str):
        self.redis = aioredis.Redis.from_url(url)
        self.prefix = f"ev{secrets.token_hex(3)}:"
        self.store = InterviewStore(self.redis, prefix=self.prefix, retention_s=3600)
        self.api = InterviewsApi(self.store, JoinTokens.ephemeral(), {}, "http://x", 3600)
        self.jobs: list[EvaluationJobs] = []

    def instance(self, name: str, generate=None, **kw) -> EvaluationJobs:
        jobs = EvaluationJobs(self.store, generate or ScriptedGenerate(ANSWER), name, poll_s=0.1, **kw)
        self.jobs.append(jobs)
        return jobs

    async def interview(self, *, evaluate_at_end: bool | None = None, end: bool = True) -> str:
        cfg = interviews_pb2.InterviewConfig()
        if evaluate_at_end is not None:
            cfg.evaluate_at_end = evaluate_at_end
        created = await self.api.create(interviews_pb2.CreateInterviewRequest(plan=plan(), config=cfg), "team")
        iid = created.interview.id
        entries, events = entries_and_events()
        for e in entries:
            e.interview_id, e.entry_id, e.sequence = iid, f"e{e.sequence}", 0
            await self.store.append_transcript(e)
        for ev in events:
            ev.interview_id, ev.event_id = iid, ""
            await self.store.append_event(ev)
        if end:
            await self.api.end(interviews_pb2.EndInterviewRequest(interview_id=iid, reason="completed"))
        return iid

    async def close(self) -> None:
        for j in self.jobs:
            await j.stop()
        await self.redis.aclose()


@pytest.fixture
async def env(redis_server):
    e = Env(redis_server.url)
    yield e
    await e.close()


async def wait_status(jobs: EvaluationJobs, iid: str, status: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (await jobs.job(iid)).status != status:
        assert time.monotonic() < deadline, f"job is {(await jobs.job(iid)).status}, not {status}"
        await asyncio.sleep(0.05)


async def test_an_ended_interview_is_evaluated_once_and_stored_in_its_event_stream(env):
    a, b = env.instance("a"), env.instance("b")
    a.start(), b.start()
    await asyncio.sleep(0.3)  # the consumer group exists before the end
    iid = await env.interview()
    await wait_status(a, iid, DONE)
    stored = [ev for ev in await env.store.read_events(env.store.keys.events(iid), "0-0", count=1000)
              if ev.WhichOneof("payload") == "evaluation"]
    assert len(stored) == 1 and (await a.job(iid)).attempts == 1
    ev = stored[0].evaluation
    assert ev.status == interviews_pb2.EVALUATION_DONE and ev.kind == interviews_pb2.EVALUATION_RUBRIC
    assert ev.plan_version == "7" and ev.prompt_version and ev.model == "fake" and ev.advisory
    assert ev.last_event_id and ev.last_event_id < stored[0].event_id
    entries = {e.sequence: e for e in await env.store.transcript(iid)}
    for c in ev.criteria:
        for e in c.evidence:  # every evidence number is a real candidate entry holding the quote
            assert entries[e.transcript_sequence].role == common_pb2.ROLE_USER
            assert e.quote.lower() in entries[e.transcript_sequence].text.lower()
    gen_a, gen_b = a.generate, b.generate
    assert len(gen_a.requests) + len(gen_b.requests) == 2  # one instance ran both runs


async def test_evaluate_at_end_false_queues_nothing(env):
    a = env.instance("a")
    a.start()
    await asyncio.sleep(0.3)
    iid = await env.interview(evaluate_at_end=False)
    await asyncio.sleep(0.6)
    assert (await a.job(iid)).status == ""



async def test_a_claim_race_has_one_winner_and_a_crashed_runner_is_taken_over(env):
    iid = await env.interview(evaluate_at_end=False)
    a, b = env.instance("a", lease_ms=400), env.instance("b", lease_ms=400)
    assert await a.enqueue(iid) == "queued"
    results = await asyncio.gather(*(j.claim(iid) for j in (a, b, a, b)))
    assert results.count("claimed") == 1 and results.count("busy") == 3
    # the winner "crashes" (never renews, never finishes); after its lease another instance takes over
    winner, other = (a, b) if results[0] == "claimed" or results[2] == "claimed" else (b, a)
    assert await other.claim(iid) == "busy"
    other.start()
    await wait_status(other, iid, DONE)
    job = await other.job(iid)
    assert job.attempts == 2
    # the crashed runner comes back and tries to store its result: refused, nothing written
    assert await winner.run(iid) is None
    stored = [ev for ev in await env.store.read_events(env.store.keys.events(iid), "0-0", count=1000)
              if ev.WhichOneof("payload") == "evaluation"]
    assert len(stored) == 1


async def test_evaluate_returns_the_stored_one_unless_forced_and_a_forced_run_supersedes(env):
    iid = await env.interview(evaluate_at_end=False)
    gen = ScriptedGenerate(ANSWER)
    a = env.instance("a", gen)
    first = await a.evaluate_now(iid, force=False, wait_s=10)
    again = await a.evaluate_now(iid, force=False, wait_s=10)
    assert again == first and len(gen.requests) == 2
    forced = await a.evaluate_now(iid, force=True, wait_s=10)
    assert forced.evaluation_id != first.evaluation_id and forced.supersedes == first.evaluation_id
    assert len(gen.requests) == 4
    assert (await a.evaluate_now(iid, force=False, wait_s=10)).evaluation_id == forced.evaluation_id
    kept = [ev.evaluation.evaluation_id for ev in await env.store.read_events(env.store.keys.events(iid), "0-0",
                                                                               count=1000)
            if ev.WhichOneof("payload") == "evaluation"]
    assert kept == [first.evaluation_id, forced.evaluation_id]  # the old one is kept
    # erasure takes the job and the evaluations with it
    await env.store.delete(iid)
    assert not await env.redis.exists(a.job_key(iid), env.store.keys.events(iid))


async def test_a_failed_run_is_stored_as_failed_with_its_reason_and_a_live_interview_is_refused(env):
    iid = await env.interview(evaluate_at_end=False)
    a = env.instance("a", ScriptedGenerate("{not json"))
    ev = await a.evaluate_now(iid, force=False, wait_s=10)
    assert ev.status == interviews_pb2.EVALUATION_FAILED and "not JSON" in ev.reason and not ev.criteria
    assert (await a.job(iid)).status == "FAILED"
    live = await env.interview(end=False)
    with pytest.raises(NotEnded):
        await a.evaluate_now(live, force=False, wait_s=1)


async def test_a_job_for_a_deleted_interview_disappears(env):
    iid = await env.interview(evaluate_at_end=False)
    a = env.instance("a")
    await a.enqueue(iid)
    await env.store.delete(iid)
    assert await a.claim(iid) == "gone"
    assert not await env.redis.zscore(a.due_key, iid)
