"""The CODING-mode check-in timer.

Rules (issue 8, and what users of other voice frameworks complain about when they are broken):
- it runs only in CODING mode; leaving CODING cancels it;
- it counts from the end of the last *transcribed* utterance of either side, so VAD noise that
  never becomes a transcript does not re-arm it;
- it does not run while the agent speaks (the agent's utterance ending restarts the count);
- after a check-in fires it re-arms with the same timeout, so a silent candidate gets exactly one
  check-in per timeout.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from services.common.clock import Clock, Timer

log = logging.getLogger("conversation.silence_timer")

DEFAULT_TIMEOUT_S = 90.0


class SilenceTimer:
    def __init__(self, clock: Clock, on_check_in: Callable[[], object], timeout_s: float = DEFAULT_TIMEOUT_S):
        if timeout_s <= 0:
            raise ValueError("silence timeout must be positive")
        self._clock = clock
        self._on_check_in = on_check_in
        self.timeout_s = timeout_s
        self._coding = False
        self._agent_speaking = False
        self._since = clock.monotonic()  # end of the last transcribed utterance
        self._timer: Timer | None = None

    @property
    def armed(self) -> bool:
        return self._timer is not None

    @property
    def deadline(self) -> float | None:
        return self._since + self.timeout_s if self.armed else None

    def set_mode(self, coding: bool, timeout_s: float | None = None) -> None:
        """Enter or leave CODING (idempotent); a new timeout applies from the current count."""
        if timeout_s is not None:
            if timeout_s <= 0:
                raise ValueError("silence timeout must be positive")
            self.timeout_s = timeout_s
        if coding and not self._coding:
            self._since = self._clock.monotonic()  # entering CODING starts the count
        self._coding = coding
        self._reschedule()

    def utterance_transcribed(self) -> None:
        """A final transcript (candidate) or a finished agent utterance: restart the count."""
        self._since = self._clock.monotonic()
        self._reschedule()

    def agent_speaking(self, speaking: bool) -> None:
        """The agent's speech ending is an utterance end, so it restarts the count."""
        self._agent_speaking = speaking
        if not speaking:
            self._since = self._clock.monotonic()
        self._reschedule()

    def cancel(self) -> None:
        self._coding = False
        self._reschedule()

    def _reschedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._coding and not self._agent_speaking:
            delay = self._since + self.timeout_s - self._clock.monotonic()
            self._timer = self._clock.call_later(max(0.0, delay), self._fire)

    def _fire(self) -> None:
        self._timer = None
        if not self._coding or self._agent_speaking:
            return
        log.info("silence check-in", extra={"timeout_s": self.timeout_s})
        self._since = self._clock.monotonic()  # re-arm with the same timeout
        self._reschedule()
        self._on_check_in()
