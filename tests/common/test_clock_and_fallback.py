import asyncio

from services.common.clock import FakeClock
from services.common.fallback import BreakerState, CircuitBreaker, ProviderChain
from services.common.retry import Backoff


async def test_fake_clock_fires_timers_in_order_and_wakes_sleepers():
    clock = FakeClock()
    fired: list[str] = []
    clock.call_later(90, lambda: fired.append("checkin"))
    t = clock.call_later(30, lambda: fired.append("cancelled"))
    t.cancel()
    clock.call_later(10, lambda: fired.append("early"))
    woke = asyncio.Event()

    async def sleeper() -> None:
        await clock.sleep(50)
        woke.set()

    task = asyncio.create_task(sleeper())
    await clock.advance(49)
    assert fired == ["early"] and not woke.is_set()
    await clock.advance(1)
    assert woke.is_set()
    await clock.advance(40)
    assert fired == ["early", "checkin"]
    await task


def test_breaker_opens_then_half_opens_after_cooldown():
    clock = FakeClock()
    b = CircuitBreaker("gemini", failure_threshold=2, cooldown_s=30, clock=clock)
    b.record_failure("500")
    assert b.state is BreakerState.CLOSED
    b.record_failure("500")
    assert b.state is BreakerState.OPEN and not b.allow()
    clock._now += 30
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow() and not b.allow()  # one trial at a time
    b.release()  # the trial was cancelled without a verdict: the next request may try
    assert b.allow() and not b.allow()
    b.record_success()
    assert b.state is BreakerState.CLOSED


def test_chain_skips_open_breakers_but_always_offers_the_last():
    clock = FakeClock()
    chain = ProviderChain([("cloud", "C"), ("offline", "O")], cooldown_s=10, clock=clock)
    assert [n for n, _, _ in chain.candidates()] == ["cloud", "offline"]
    chain.breakers["cloud"].record_failure("timeout")
    assert [n for n, _, _ in chain.candidates()] == ["offline"]
    chain.breakers["offline"].record_failure("broken")
    assert [n for n, _, _ in chain.candidates()] == ["offline"]


def test_backoff_is_bounded_and_capped():
    delays = list(Backoff(initial_s=0.5, cap_s=2, attempts=5, jitter=0).delays())
    assert delays == [0.5, 1.0, 2.0, 2.0, 2.0]
