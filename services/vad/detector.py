"""The speech/silence state machine, one implementation for the service and the CLI.

Per window it takes Silero's speech probability and decides SPEECH_STARTED / SPEECH_STOPPED with
hysteresis (start at >= activation, silence counts below deactivation, in between the current
state holds), a minimum speech length, a minimum silence length and padding.

Params can change between any two windows. Nothing is reset: the model state lives elsewhere and
the utterance in progress (its start, the silence so far) is kept. Before each window the state is
re-checked against the current params, which gives the rules for changes mid-utterance:
- min_silence_ms lowered during a pause that already lasted longer: SPEECH_STOPPED on the next
  window (the pause happened; the window's own probability cannot undo it). Raised: the pause
  simply needs longer.
- min_speech_ms only gates a *pending* start. Lowered below what a pending candidate already lasted:
  SPEECH_STARTED on the next window. Once SPEECH_STARTED was sent, min_speech_ms no longer
  matters for that utterance (an event is never retracted).
- Thresholds apply to the next window's probability; speech_pad_ms to the next event's offset.
Time is the stream timeline in samples; a gap in the audio counts as time passing.
"""
from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Limit:
    low: float
    high: float
    help: str


# Accepted ranges: anything outside is a caller bug, reported with these bounds.
LIMITS: dict[str, Limit] = {
    "activation_threshold": Limit(0.01, 1.0, "probability at or above which speech starts"),
    "deactivation_threshold": Limit(0.0, 0.99, "probability below which silence counts"),
    "min_speech_ms": Limit(0, 10_000, "speech shorter than this is not an utterance"),
    "min_silence_ms": Limit(0, 60_000, "silence that ends an utterance"),
    "speech_pad_ms": Limit(0, 2_000, "padding before a start / after a stop offset"),
    "turn_scoring": Limit(0, 1, "score each pause with the end-of-turn model"),
    "turn_pause_ms": Limit(0, 10_000, "pause inside speech after which the turn is scored"),
    "turn_threshold": Limit(0.0, 1.0, "turn probability at or above which end_of_turn is set"),
}


class ParamsError(ValueError):
    """A params value out of range; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Params:
    """Server defaults are Silero's reference segmentation (threshold 0.5, 0.15 hysteresis,
    250 ms min speech, 100 ms min silence, 30 ms pad). Turn-taking callers set min_silence_ms
    for their mode (the orchestrator: 1200 conversational, 3000 coding)."""

    activation_threshold: float = 0.5
    deactivation_threshold: float = 0.35
    min_speech_ms: int = 250
    min_silence_ms: int = 100
    speech_pad_ms: int = 30
    # Turn scoring (services/vad/turns.py); the detector itself ignores these.
    turn_scoring: bool = False
    turn_pause_ms: int = 200
    turn_threshold: float = 0.5

    def updated(self, **changes: float | int | None) -> "Params":
        """A validated copy with the given (non-None) fields changed; raises ParamsError."""
        new = replace(self, **{k: v for k, v in changes.items() if v is not None})
        new.validate()
        return new

    def validate(self) -> None:
        for f in fields(self):
            value, limit = getattr(self, f.name), LIMITS[f.name]
            if not (limit.low <= value <= limit.high):  # also rejects NaN
                raise ParamsError(f.name, f"{f.name}={value:g} is out of range: accepted {limit.low:g}..{limit.high:g} "
                                          f"({limit.help})")
        if self.deactivation_threshold > self.activation_threshold:
            raise ParamsError("deactivation_threshold",
                              f"deactivation_threshold={self.deactivation_threshold:g} is above "
                              f"activation_threshold={self.activation_threshold:g}: it must be lower or equal "
                              "(send both in one update to move them together)")


class Kind(enum.Enum):
    STARTED = 1
    STOPPED = 2


@dataclass(frozen=True)
class Event:
    kind: Kind
    offset: int       # where speech started (minus pad) / stopped (plus pad), in samples
    decided_at: int   # end of the window on which the event was decided
    probability: float


class Detector:
    """Feed windows in timeline order with `process`; call `finish` at the end of the audio."""

    def __init__(self, rate: int, params: Params | None = None):
        self.rate = rate
        self.speaking = False
        self._speech_start: int | None = None   # start of the candidate / confirmed utterance
        self._silence_start: int | None = None  # while speaking: where the current pause began
        self._last_end = 0                       # end of the last window processed
        self._floor = 0                          # a start's padding never reaches before this
        self.set_params(params or Params())

    @property
    def params(self) -> Params:
        return self._params

    def set_params(self, params: Params) -> None:
        """Takes effect from the next window; no state is reset (see the module docstring)."""
        self._params = params
        ms = self.rate // 1000
        self._min_speech = params.min_speech_ms * ms
        self._min_silence = params.min_silence_ms * ms
        self._pad = params.speech_pad_ms * ms

    def process(self, start: int, end: int, probability: float) -> list[Event]:
        events: list[Event] = []
        # Re-check the state against the current params first: a change may have made an event due.
        self._resolve(self._last_end, end, probability, events)
        p = self._params
        if not self.speaking:
            if probability >= p.activation_threshold:
                if self._speech_start is None:
                    self._speech_start = start
            elif probability < p.deactivation_threshold:
                self._speech_start = None
        elif probability >= p.activation_threshold:
            self._silence_start = None
        elif probability < p.deactivation_threshold and self._silence_start is None:
            self._silence_start = start
        self._resolve(end, end, probability, events)
        self._last_end = end
        return events

    def finish(self) -> list[Event]:
        """End of audio: an utterance still open stops where the audio (or its pause) ended."""
        if not self.speaking:
            return []
        stop = self._last_end if self._silence_start is None else min(self._silence_start + self._pad, self._last_end)
        return [self._stopped(stop, self._last_end, 0.0)]

    def _resolve(self, now: int, decided_at: int, probability: float, events: list[Event]) -> None:
        if not self.speaking and self._speech_start is not None and now - self._speech_start >= self._min_speech:
            self.speaking, self._silence_start = True, None
            events.append(Event(Kind.STARTED, max(self._speech_start - self._pad, self._floor), decided_at, probability))
        elif self.speaking and self._silence_start is not None and now - self._silence_start >= self._min_silence:
            events.append(self._stopped(min(self._silence_start + self._pad, decided_at), decided_at, probability))

    def _stopped(self, offset: int, decided_at: int, probability: float) -> Event:
        self.speaking, self._speech_start, self._silence_start = False, None, None
        self._floor = offset
        return Event(Kind.STOPPED, offset, decided_at, probability)


def segments(events: Iterable[Event]) -> Iterator[tuple[int, int]]:
    """(start, stop) sample offsets of each utterance from an event sequence."""
    start: int | None = None
    for ev in events:
        if ev.kind is Kind.STARTED:
            start = ev.offset
        elif start is not None:
            yield start, ev.offset
            start = None
