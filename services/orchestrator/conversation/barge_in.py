"""Two-stage barge-in, as LiveKit does it, with one owner of the decision.

While an agent turn is on (from the moment its LLM call starts, not when audio starts):
SPEECH_STARTED -> PAUSE playback (stage one). The interruption is committed on the first STT
word or after `commit_after_s` of continuous speech -> CLEAR (drop every chunk of that
generation, now and later) and the turn is cancelled (LLM and TTS calls). If the speech stops
before either (a cough, a false alarm) -> RESUME. "Stops" is decided by `still_speaking` when the
commit timer fires (the session answers from VAD probabilities), because VAD's SPEECH_STOPPED only
comes after the mode's min silence (1.2-3 s), far later than the 500 ms decision.
"""
from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from services.common.clock import Clock, Timer

log = logging.getLogger("conversation.barge_in")


class Stage(str, enum.Enum):
    IDLE = "idle"            # no agent turn on
    SPEAKING = "speaking"    # agent turn on, no candidate speech
    PAUSED = "paused"        # candidate speech during the turn, not yet committed


class BargeIn:
    def __init__(self, clock: Clock, *, pause: Callable[[str], object], resume: Callable[[str], object],
                 commit: Callable[[str], object], commit_after_s: float = 0.5,
                 still_speaking: Callable[[], bool] | None = None):
        """`pause`/`resume` drive playback; `commit(generation_id)` must send CLEAR and cancel
        the turn's LLM and TTS calls."""
        self._clock = clock
        self._pause, self._resume, self._commit = pause, resume, commit
        self._still_speaking = still_speaking
        self.commit_after_s = commit_after_s
        self.stage = Stage.IDLE
        self.generation_id = ""
        self._timer: Timer | None = None
        self._awaiting_start = False  # paused early, SPEECH_STARTED not seen yet
        self.interruptions = 0
        self.false_alarms = 0

    def turn_started(self, generation_id: str) -> None:
        self._cancel_timer()
        self.generation_id = generation_id
        self.stage = Stage.SPEAKING

    def turn_finished(self) -> None:
        """The generation played to its end (or was cancelled elsewhere)."""
        self._cancel_timer()  # a pending pause has nothing left to resume or clear
        self._awaiting_start = False
        self.stage = Stage.IDLE
        self.generation_id = ""

    def early_pause(self, confirm_within_s: float) -> None:
        """Stage one before VAD's SPEECH_STARTED (which waits for min speech): PAUSE now; if
        SPEECH_STARTED does not confirm it within `confirm_within_s`, RESUME. The commit decision
        is unchanged: it still runs from SPEECH_STARTED."""
        if self.stage is not Stage.SPEAKING:
            return
        self.stage = Stage.PAUSED
        self._awaiting_start = True
        log.info("barge-in: pause (early)", extra={"generation_id": self.generation_id})
        self._pause(self.generation_id)
        self._timer = self._clock.call_later(confirm_within_s, self.speech_stopped)

    def speech_started(self) -> None:
        if self.stage is Stage.PAUSED and self._awaiting_start:  # confirms an early pause
            self._cancel_timer()
            self._awaiting_start = False
            self._timer = self._clock.call_later(self.commit_after_s, self._timer_fired)
            return
        if self.stage is not Stage.SPEAKING:
            return
        self.stage = Stage.PAUSED
        log.info("barge-in: pause", extra={"generation_id": self.generation_id})
        self._pause(self.generation_id)
        self._timer = self._clock.call_later(self.commit_after_s, self._timer_fired)

    def stt_word(self) -> None:
        """A non-empty interim or final transcript arrived for the candidate's speech."""
        if self.stage is Stage.PAUSED:
            self._do_commit()

    def speech_stopped(self) -> None:
        if self.stage is not Stage.PAUSED:
            return
        self._cancel_timer()
        self._awaiting_start = False
        self.stage = Stage.SPEAKING
        self.false_alarms += 1
        log.info("barge-in: resume (false alarm)", extra={"generation_id": self.generation_id})
        self._resume(self.generation_id)

    def _timer_fired(self) -> None:
        self._timer = None
        if self._still_speaking is not None and not self._still_speaking():
            self.speech_stopped()  # the noise is over: a false alarm
        else:
            self._do_commit()

    def _do_commit(self) -> None:
        self._cancel_timer()
        self._awaiting_start = False
        if self.stage is not Stage.PAUSED:
            return
        generation_id = self.generation_id
        self.stage = Stage.IDLE
        self.generation_id = ""
        self.interruptions += 1
        log.info("barge-in committed", extra={"generation_id": generation_id})
        self._commit(generation_id)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
