"""What the listener heard: the typed events it reports to its `ListenerHooks` (listener.py).

Events only, no behaviour: the listener emits them and never calls up; the session routes them
to the floor and the end-of-turn policy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from opentelemetry import trace

from interview.v1 import common_pb2


@dataclass(frozen=True)
class SpeechStarted:
    offset: int  # VAD's start of speech on the input timeline (samples)


@dataclass(frozen=True)
class EarlySpeech:
    """Voiced windows for at least `pause_ms`, before (or, after a false alarm, within) an utterance."""

    in_utterance: bool
    confirm_within_s: float  # SPEECH_STARTED should follow within this (the VAD's min speech + slack)


@dataclass(frozen=True)
class SpeechStopped:
    at: float  # monotonic time the SPEECH_STOPPED was received
    trace: common_pb2.TraceContext  # the turn's trace, started here
    span: trace.Span | None = None  # the open 'turn' span: whoever answers ends it at first audio


@dataclass(frozen=True)
class TurnPaused:
    """A short pause inside speech, scored by the VAD's end-of-turn model (turn scoring on). The
    utterance so far was FINALIZEd as `finalize_id`; the VAD still counts the speaker as speaking."""

    probability: float  # the model's: the turn is complete
    pause_ms: int       # silence so far when scored
    at: float           # monotonic time the score was received
    finalize_id: str
    trace: common_pb2.TraceContext  # the turn's trace, started here
    span: trace.Span | None = None  # its open 'turn' span (as SpeechStopped's)
    after_stop: bool = False  # a late score: SPEECH_STOPPED came first (finalize_id is the stop's FINALIZE)


@dataclass(frozen=True)
class SpeechResumed:
    """Voiced again (for at least `early_pause_ms`) after a TurnPaused, in the same VAD utterance."""


@dataclass(frozen=True)
class TurnScoringUnavailable:
    reason: str  # the VAD's Problem: its end-of-turn model is not loaded


@dataclass(frozen=True)
class Interim:
    text: str
    is_final: bool  # a provider final that answers no FINALIZE (no caption then)


@dataclass(frozen=True)
class Final:
    text: str  # may be empty: the FINALIZE was answered, nothing was said
    finalize_id: str
    confidence: float = 0.0  # the STT final's (0..1; 0 = unknown)
    words: int = 0  # how many words it holds: the weight of its confidence in the entry's
    covers: tuple[str, ...] = ()  # held-back FINALIZEs coalesced into this one: answered with it


Heard = SpeechStarted | EarlySpeech | SpeechStopped | TurnPaused | SpeechResumed | TurnScoringUnavailable | Interim | Final


class ListenerHooks(Protocol):
    def heard(self, event: Heard) -> None: ...
