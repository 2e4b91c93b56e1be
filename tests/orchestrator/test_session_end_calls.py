"""A hangup right after the closing words does not cancel the LLM's end call: the session's
shutdown lets it finish (bounded), so the interview does not stay ACTIVE. Real AI services,
real Redis; the end call is slowed so the hangup surely comes first."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest

from interview.v1 import common_pb2, session_pb2
from tests.orchestrator.session_support import Candidate, Orchestrator, speech

pytestmark = pytest.mark.timeout(60)


def wrap_up_plan() -> common_pb2.Plan:
    """One wrap-up phase: the scripted LLM answers anything with its closing words and END_INTERVIEW."""
    return common_pb2.Plan(name="w", title="Wrap", role="Engineer", greeting="Hello there.", version="1", phases=[
        common_pb2.Phase(id="wrap", title="Wrap-up", kind=common_pb2.PHASE_WRAP_UP, time_budget_s=600)])


async def test_hangup_right_after_the_closing_words_still_ends_the_interview(orch: Orchestrator) -> None:
    real_end = orch.api.end
    calls: list[float] = []

    async def slow_end(*args: Any, **kwargs: Any) -> Any:
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(1.0)  # e.g. a slow store: the hangup arrives while the call is under way
        return await real_end(*args, **kwargs)

    orch.api.end = slow_end  # type: ignore[method-assign]
    iid, token = await orch.create(plan=wrap_up_plan())
    async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
        await cand.wait_played(await cand.wait_generations(1, timeout=10))
        await cand.say(speech("goforward_16k.wav"))
        await cand.wait_generations(2, timeout=15)
        await cand.wait_for(lambda: calls, timeout=15, what="the LLM's end call")
        # hang up at once: the session ends "disconnected" while the end call is still running
    await orch.transcript(iid)
    snap = await orch.store.get(iid)
    assert snap.interview.status == session_pb2.INTERVIEW_ENDED, snap.interview
    assert snap.interview.end_reason == "completed"
