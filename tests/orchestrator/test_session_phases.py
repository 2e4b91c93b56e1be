"""Phase time budgets (injected clock): over budget, the next reply wraps the phase up."""
from __future__ import annotations

import pytest

from interview.v1 import common_pb2
from services.common.clock import FakeClock
from tests.orchestrator.session_support import Candidate, Orchestrator, speech
from tests.support.procs import RedisServer

pytestmark = pytest.mark.timeout(90)


async def test_over_budget_the_next_turn_wraps_the_phase_up(ai: dict, redis_server: RedisServer) -> None:
    clock = FakeClock()
    orch = await Orchestrator(redis_server.url, {k: p.address for k, p in ai.items()}, clock=clock).start()
    try:
        iid, token = await orch.create()  # intro (600 s budget), then live coding
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            await cand.wait_played(await cand.wait_generations(1))
            session = orch.servicer.live[iid]
            await cand.wait_for(lambda: session.floor.turn is None, what="greeting over")
            assert session.interview.phase_id == "intro" and session.view.phase_time_left_s() == 600
            await clock.advance(601)
            assert session.view.phase_time_left_s() < 0
            await cand.say(speech("goforward_16k.wav"))
            await cand.pause(1.5)
            await cand.wait_played(await cand.wait_generations(2))
            await cand.wait_for(lambda: session.interview.phase_id == "coding", what="ADVANCE_PHASE applied")
            reply = [c.text for c in cand.of("caption") if c.role == common_pb2.ROLE_AGENT and c.is_final][-1]
            assert "out of time" in reply, reply
            assert session.interview.mode == common_pb2.MODE_CODING  # entering live coding
            assert session.view.phase_time_left_s() == 600  # the new phase's clock
        users = [e for e in await orch.transcript(iid) if e.role == common_pb2.ROLE_USER]
        assert users and "forward" in users[0].text and users[0].phase_id == "intro"
    finally:
        await orch.stop()


async def test_greeting_latency_from_join_is_measured(orch: Orchestrator, capsys: pytest.CaptureFixture[str]) -> None:
    """The 400 ms join → greeting target (offline stack) is measured and printed, not asserted
    tightly: this machine is shared. Joins several times for a median."""
    import time
    samples = []
    for _ in range(3):
        iid, token = await orch.create()
        t0 = time.monotonic()
        async with Candidate(orch.address, iid, token=token, instant_playback=True) as cand:
            gid = await cand.wait_generations(1, timeout=10)
            samples.append((cand.generations[gid].first_audio_at or 0) - t0)
        await orch.transcript(iid)  # the session has finished its writes
    samples.sort()
    with capsys.disabled():
        print(f"\njoin -> first greeting audio: median {samples[1] * 1000:.0f} ms "
              f"(min {samples[0] * 1000:.0f}, max {samples[-1] * 1000:.0f}; target 400 ms)")
    assert samples[1] < 5.0
