"""The one failover driver, shared by STT, LLM and TTS: breakers, the walk along a provider
chain, the first-token deadline with one retry, and FALLBACK / BREAKER_OPEN reporting.

A chain is an ordered list of providers, each behind a circuit breaker: a provider whose breaker
is open is skipped until its cool-down ends; then one trial request is let through (half-open).
The last provider is always offered: something must answer.

A `Failover` is one request's or stream's walk along the chain. `begin()` picks the first provider
the breakers allow; `fail(reason)` records a failure and moves to the next; `succeed()` closes the
breaker. Each returns the ProviderEvents to send: BREAKER_OPEN for a provider skipped while cooling
down (and, with `announce_open`, when a failure opens a breaker), FALLBACK when another provider
takes over. Services decide what a failure is (an error reply, a dropped socket mid-utterance);
`first_answer` adds the policy for request/response providers: a first-token deadline, one quick
retry of a retryable error, then fallback.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar, Union

from interview.v1 import common_pb2
from services.common import metrics
from services.common.clock import Clock, RealClock
from services.common.errors import ProviderError

log = logging.getLogger("fallback")

P = TypeVar("P")
T = TypeVar("T")
Event = common_pb2.ProviderEvent


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


_STATE_VALUE = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}  # the gauge's values


@dataclass
class CircuitBreaker:
    name: str
    failure_threshold: int = 1  # consecutive failures that open it
    cooldown_s: float = 30.0
    clock: Clock = field(default_factory=RealClock)
    _failures: int = 0
    _opened_at: float | None = None
    _trial_in_flight: bool = False

    def __post_init__(self) -> None:
        # Read at scrape time (the state turns half-open by the clock, not by an event).
        metrics.BREAKER_STATE.labels(self.name).set_function(lambda: _STATE_VALUE[self.state])

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self.clock.monotonic() - self._opened_at >= self.cooldown_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a request go to this provider now? In half-open, only one trial at a time."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        if self._opened_at is not None:
            log.info("breaker closed", extra={"provider": self.name})
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def release(self) -> None:
        """An allowed request ended without a verdict (e.g. the caller cancelled it before the
        provider answered): let the next request be the half-open trial, else none ever is."""
        self._trial_in_flight = False

    def record_failure(self, reason: str = "") -> None:
        self._failures += 1
        self._trial_in_flight = False
        if self._opened_at is not None or self._failures >= self.failure_threshold:
            if self.state is not BreakerState.OPEN:
                log.warning("breaker opened", extra={"provider": self.name, "reason": reason,
                                                     "cooldown_s": self.cooldown_s})
            self._opened_at = self.clock.monotonic()


class ProviderChain(Generic[P]):
    """Ordered providers, each behind its own breaker."""

    def __init__(self, providers: Sequence[tuple[str, P]], *, failure_threshold: int = 1,
                 cooldown_s: float = 30.0, clock: Clock | None = None):
        if not providers:
            raise ValueError("a provider chain needs at least one provider")
        clock = clock or RealClock()
        self._providers = list(providers)
        self.breakers = {name: CircuitBreaker(name, failure_threshold, cooldown_s, clock)
                         for name, _ in providers}

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self._providers]

    def get(self, name: str) -> P:
        for n, provider in self._providers:
            if n == name:
                return provider
        raise KeyError(name)

    def candidates(self, start: str | None = None) -> Iterator[tuple[str, P, CircuitBreaker]]:
        """Providers to try in order (from `start` if given), skipping open breakers. The last
        provider is always offered even if its breaker is open: something must answer."""
        items = self._providers
        if start is not None:
            names = self.names
            if start not in names:
                raise KeyError(start)
            items = items[names.index(start):]
        for i, (name, provider) in enumerate(items):
            breaker = self.breakers[name]
            if breaker.allow() or i == len(items) - 1:
                yield name, provider, breaker


@dataclass
class Attempt:
    """What happened to one provider in one request (skipped, failed, or answering)."""

    provider: str
    error: str = ""
    breaker_state: str = BreakerState.CLOSED.value


@dataclass
class Answer(Generic[T]):
    """The provider that produced a first item, its stream and that item: the request is committed."""

    provider: str
    stream: AsyncIterator[T]
    first: T


class Failover(Generic[P]):
    """One request's or stream's walk along a chain.

    `start`: begin at this provider (later ones remain as fallbacks); `pinned`: use only `start`,
    breaker not consulted (the caller asked for that provider); `fallback=False`: a failure ends the
    walk instead of moving on; `announce_open`: a failure that opens the breaker is reported too.
    """

    def __init__(self, chain: ProviderChain[P], start: str | None = None, *, pinned: bool = False,
                 fallback: bool = True, announce_open: bool = False):
        self.chain = chain
        self.fallback = fallback and not pinned
        self.announce_open = announce_open
        self.attempts: list[Attempt] = []
        self.name = ""
        self.provider: P | None = None
        names = chain.names
        self._pos = names.index(start) if start else 0
        self._last = start if pinned else names[-1]
        self._candidates: Iterator[tuple[str, P, CircuitBreaker]] = (
            iter([(start, chain.get(start), chain.breakers[start])]) if pinned and start else chain.candidates(start))

    @property
    def breaker(self) -> CircuitBreaker:
        return self.chain.breakers[self.name]

    @property
    def is_last(self) -> bool:
        """Nothing to fall back to after the current provider."""
        return self.name == self._last or not self.fallback

    def begin(self) -> list[Event]:
        """Pick the first provider the breakers allow (`name`, `provider`; None if there is none)."""
        return self._advance()

    def succeed(self) -> None:
        """The current provider answered: its breaker closes."""
        self.breaker.record_success()
        last = self.attempts[-1] if self.attempts else None
        if last is None or last.provider != self.name or last.error:  # once per provider taking over
            self.attempts.append(Attempt(self.name, "", self.breaker.state.value))

    def release(self) -> None:
        """The request ended without a verdict on the provider (cancelled before it answered)."""
        self.breaker.release()

    def fail(self, reason: str) -> list[Event]:
        """The current provider failed: record it, move on (`provider` is None when nothing is left)."""
        failed = self.name
        self.breaker.record_failure(reason)
        metrics.PROVIDER_FAILURES.labels(failed).inc()
        state = self.breaker.state
        self.attempts.append(Attempt(failed, reason, state.value))
        log.warning("provider failed", extra={"provider": failed, "error": reason, "breaker": state.value})
        events = []
        if self.announce_open and state is BreakerState.OPEN:
            events.append(Event(kind=Event.BREAKER_OPEN, provider="", from_provider=failed, reason=reason))
        if not self.fallback:
            self.name, self.provider = "", None
            return events
        events += self._advance()
        if self.provider is not None:
            log.warning("falling back", extra={"from": failed, "to": self.name, "reason": reason})
            metrics.PROVIDER_FALLBACKS.labels(failed, self.name).inc()
            events.append(Event(kind=Event.FALLBACK, provider=self.name, from_provider=failed, reason=reason))
        return events

    def fail_committed(self, reason: str) -> None:
        """The provider failed after its answer had started: no fallback (never a second answer)."""
        self.breaker.record_failure(reason)
        metrics.PROVIDER_FAILURES.labels(self.name).inc()
        self.attempts[-1].error = reason
        self.attempts[-1].breaker_state = self.breaker.state.value
        log.warning("provider failed mid-answer", extra={"provider": self.name, "error": reason})

    def summary(self) -> str:
        return "; ".join(f"{a.provider}: {a.error}" for a in self.attempts) or "no provider configured"

    def _advance(self) -> list[Event]:
        found = next(self._candidates, None)
        if found is None:
            self.name, self.provider = "", None
            return []
        self.name, self.provider, _ = found
        names = self.chain.names
        here = names.index(self.name)
        events = []
        for skipped in names[self._pos:here]:  # passed over because their breakers are open
            self.attempts.append(Attempt(skipped, "skipped: breaker open", self.chain.breakers[skipped].state.value))
            events.append(Event(kind=Event.BREAKER_OPEN, provider=self.name, from_provider=skipped,
                                reason=f"{skipped} failed recently; skipped for a cool-down"))
        self._pos = here + 1
        return events

    async def first_answer(self, start: Callable[[str, P], AsyncIterator[T]],
                           deadline_s: float) -> AsyncIterator[Union[Event, Answer[T]]]:
        """Walk the chain until a provider's stream yields its first item; yield the events on the
        way, then the Answer. A provider with nothing by `deadline_s` (the last one has no deadline)
        or an error is closed and abandoned; a retryable error within the first half of the
        deadline is retried once on the same provider. Ends without an Answer when every provider
        failed (`summary` says why)."""
        for event in self.begin():
            yield event
        while self.provider is not None:
            name, provider, last = self.name, self.provider, self.is_last
            for attempt in (1, 2):
                t0 = time.monotonic()
                stream = start(name, provider)
                try:
                    first = await first_item(stream, None if last else deadline_s, name)
                except ProviderError as exc:
                    await stream.aclose()  # type: ignore[attr-defined]
                    if attempt == 1 and exc.retryable and not last and time.monotonic() - t0 < deadline_s / 2:
                        log.info("provider failed, retrying once", extra={"provider": name, "error": str(exc)})
                        continue
                    for event in self.fail(str(exc)):
                        yield event
                    break
                except BaseException:  # cancelled before the first item: no verdict on the provider
                    self.release()
                    await stream.aclose()  # type: ignore[attr-defined]
                    raise
                self.succeed()
                yield Answer(name, stream, first)
                return


async def first_item(stream: AsyncIterator[T], deadline_s: float | None, name: str) -> T:
    """The stream's first item within the deadline, every way of not getting it as ProviderError."""
    try:
        async with asyncio.timeout(deadline_s):
            return await anext(stream)
    except TimeoutError:
        raise ProviderError(f"{name}: no first token within {int((deadline_s or 0) * 1000)} ms",
                            retryable=False) from None
    except StopAsyncIteration:
        raise ProviderError(f"{name}: ended without an answer", retryable=False) from None
    except ProviderError:
        raise
    except Exception as exc:  # a provider bug must not take the request down: fall back
        log.exception("provider raised unexpectedly", extra={"provider": name})
        raise ProviderError(f"{name}: {type(exc).__name__}: {exc}", retryable=False) from exc
