"""The one failover driver (services/common/fallback.py): breakers, the walk, the first-token
deadline, one retry, fallback and what is reported, against plain async generators."""
import asyncio
import time

import pytest

from interview.v1 import common_pb2
from services.common.clock import FakeClock
from services.common.errors import ProviderError
from services.common.fallback import Answer, Failover, ProviderChain, first_item

Kind = common_pb2.ProviderEvent


def kinds(events):
    return [(e.kind, e.provider, e.from_provider) for e in events]


async def walk_to_answer(walk, start, deadline_s=1.0):
    events, answer = [], None
    async for step in walk.first_answer(start, deadline_s):
        if isinstance(step, Answer):
            answer = step
        else:
            events.append(step)
    return events, answer


class Script:
    """Per provider, what each call does: "ok", "slow", "5xx", "4xx", "empty"."""

    def __init__(self, **plans):
        self.plans = {k: list(v) for k, v in plans.items()}
        self.calls: list[str] = []
        self.closed: list[str] = []

    def __call__(self, name, _provider):
        self.calls.append(name)
        return self._gen(name, self.plans[name].pop(0) if self.plans.get(name) else "ok")

    async def _gen(self, name, plan):
        try:
            if plan == "slow":
                await asyncio.sleep(10)
            if plan == "5xx":
                raise ProviderError(f"{name} HTTP 503", retryable=True, status=503)
            if plan == "4xx":
                raise ProviderError(f"{name} HTTP 429", retryable=False, status=429)
            if plan == "empty":
                return
            yield f"{name}-token"
        finally:
            self.closed.append(name)


def chain(*names, clock=None, threshold=1):
    return ProviderChain([(n, n.upper()) for n in names], failure_threshold=threshold, cooldown_s=30,
                         clock=clock or FakeClock())


async def test_retryable_error_is_retried_once_then_answers():
    c, script = chain("cloud", "local"), Script(cloud=["5xx", "ok"])
    events, answer = await walk_to_answer(Failover(c), script)
    assert answer.provider == "cloud" and answer.first == "cloud-token" and events == []
    assert script.calls == ["cloud", "cloud"] and c.breakers["cloud"].state.value == "closed"
    await answer.stream.aclose()


async def test_second_failure_falls_back_and_reports_breaker_open_and_fallback():
    c, script = chain("cloud", "local"), Script(cloud=["5xx", "5xx"])
    walk = Failover(c, announce_open=True)
    events, answer = await walk_to_answer(walk, script)
    assert answer.provider == "local" and script.calls == ["cloud", "cloud", "local"]
    assert kinds(events) == [(Kind.BREAKER_OPEN, "", "cloud"), (Kind.FALLBACK, "local", "cloud")]
    assert "HTTP 503" in events[1].reason and "cloud" in script.closed  # the failed stream was closed
    assert [(a.provider, a.breaker_state) for a in walk.attempts] == [("cloud", "open"), ("local", "closed")]
    await answer.stream.aclose()


async def test_non_retryable_error_is_not_retried_and_without_announce_only_fallback_is_said():
    c, script = chain("cloud", "local"), Script(cloud=["4xx"])
    events, answer = await walk_to_answer(Failover(c), script)
    assert script.calls == ["cloud", "local"] and kinds(events) == [(Kind.FALLBACK, "local", "cloud")]
    await answer.stream.aclose()


async def test_first_token_deadline_abandons_a_silent_provider_but_the_last_has_none():
    c, script = chain("cloud", "local"), Script(cloud=["slow"])
    t0 = time.monotonic()
    events, answer = await walk_to_answer(Failover(c), script, deadline_s=0.1)
    assert 0.1 <= time.monotonic() - t0 < 0.5 and answer.provider == "local"
    assert "no first token within 100 ms" in events[-1].reason and script.closed[0] == "cloud"
    assert script.calls == ["cloud", "local"]  # a missed deadline is not retried
    await answer.stream.aclose()
    with pytest.raises(TimeoutError):  # the last provider is waited for without a deadline
        async with asyncio.timeout(0.3):
            await walk_to_answer(Failover(chain("local")), Script(local=["slow"]), deadline_s=0.05)


async def test_open_breaker_is_skipped_and_reported_until_the_cooldown_ends():
    clock = FakeClock()
    c = chain("cloud", "local", clock=clock)
    c.breakers["cloud"].record_failure("down")
    walk = Failover(c)
    events = walk.begin()
    assert walk.name == "local" and kinds(events) == [(Kind.BREAKER_OPEN, "local", "cloud")]
    assert [(a.provider, a.error) for a in walk.attempts] == [("cloud", "skipped: breaker open")]
    clock._now += 30  # half-open: one trial goes to cloud, a second stream meanwhile skips it
    trial, other = Failover(c), Failover(c)
    assert (trial.begin(), trial.name) == ([], "cloud")
    other.begin()
    assert other.name == "local"
    trial.succeed()
    assert c.breakers["cloud"].state.value == "closed"


async def test_every_provider_failing_ends_the_walk_with_a_summary():
    c, script = chain("cloud", "local"), Script(cloud=["4xx"], local=["empty"])
    walk = Failover(c)
    events, answer = await walk_to_answer(walk, script)
    assert answer is None and walk.provider is None
    assert "cloud: cloud HTTP 429" in walk.summary() and "local: local: ended without an answer" in walk.summary()


async def test_pinned_provider_ignores_its_breaker_and_never_falls_back():
    c = chain("cloud", "local")
    c.breakers["cloud"].record_failure("down")
    walk = Failover(c, "cloud", pinned=True)
    assert walk.begin() == [] and walk.name == "cloud"
    assert walk.fail("still down") == [] and walk.provider is None


async def test_no_fallback_stream_ends_on_failure_and_mid_stream_failover_moves_on():
    c = chain("cloud", "local", threshold=2)
    walk = Failover(c, fallback=False)
    walk.begin()
    assert walk.fail("socket dropped") == [] and walk.provider is None
    walk = Failover(c)
    walk.begin()
    walk.succeed()  # answered for a while, then dropped: the next provider takes over
    assert kinds(walk.fail("socket dropped")) == [(Kind.FALLBACK, "local", "cloud")]
    assert walk.name == "local" and walk.fail("broken") == [] and walk.provider is None


async def test_cancel_before_the_first_token_releases_the_half_open_trial():
    clock = FakeClock()
    c = chain("cloud", "local", clock=clock)
    c.breakers["cloud"].record_failure("down")
    clock._now += 30
    task = asyncio.create_task(walk_to_answer(Failover(c), Script(cloud=["slow"]), deadline_s=5))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    walk = Failover(c)
    walk.begin()
    assert walk.name == "cloud"  # the trial was released, not lost


async def test_first_item_turns_a_provider_bug_into_a_provider_error():
    async def broken():
        raise KeyError("oops")
        yield  # pragma: no cover

    with pytest.raises(ProviderError, match="KeyError") as err:
        await first_item(broken(), 1.0, "cloud")
    assert not err.value.retryable and err.value.code.name == "UNAVAILABLE"
