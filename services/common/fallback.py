"""Provider fallback with circuit breakers, shared by STT, LLM and TTS (and video).

A chain is an ordered list of providers. A provider whose breaker is open is skipped until its
cool-down ends; then one trial request is let through (half-open). Services decide what counts as
a failure (an error, a missed first-token deadline, a dropped socket) and report it here, so the
policy and its logging live in one place.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from services.common.clock import Clock, RealClock

log = logging.getLogger("fallback")

P = TypeVar("P")


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    name: str
    failure_threshold: int = 1  # consecutive failures that open it
    cooldown_s: float = 30.0
    clock: Clock = field(default_factory=RealClock)
    _failures: int = 0
    _opened_at: float | None = None
    _trial_in_flight: bool = False

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
