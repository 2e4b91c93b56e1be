"""FINALIZE at the pause, before its turn score: the listener's early FINALIZE.

With turn scoring on, the VAD scores a pause once it has lasted `turn_pause_ms` (~200 ms) and the
policy decides on the words so far; FINALIZEd only when the score came, those words were there a
FINALIZE round trip later (~100 ms offline, ~250 ms for a cloud STT), all of it on the path to
the reply. This watches the same probability stream the VAD's turn tracker watches
(services/vad/turns.py: a pause starts at the first window below the deactivation threshold after
speech, and ends at a window at or above the activation threshold) and says when the pause has
lasted `after_ms`: the listener FINALIZEs then and hands that FINALIZE to the pause's TurnPaused
when the score comes for the same pause start. A pause the candidate ends before its score keeps
its piece (it joins the turn's words like any other) and the FINALIZE's turn span is closed.
"""
from __future__ import annotations

from typing import Any

from interview.v1 import common_pb2

Sent = tuple[str, common_pb2.TraceContext, Any]  # FINALIZE id, turn trace, open turn span


class PauseFinalize:
    def __init__(self, after_samples: int):
        self.after = after_samples  # 0: off (FINALIZE when the score comes)
        self.quiet_from: int | None = None  # start of the pause in progress, as the VAD counts it
        self._at: int | None = None  # the pause start the latest early FINALIZE was sent at (one a pause)
        self._sent: Sent | None = None  # that FINALIZE, until its TurnPaused takes it

    def window(self, start: int, end: int, probability: float, a: common_pb2.VadParams) -> bool:
        """One scored VAD window while the candidate speaks: True when the FINALIZE is due now."""
        if probability >= a.activation_threshold:
            self.quiet_from = None
            return False
        if self.quiet_from is None and probability < a.deactivation_threshold:
            self.quiet_from = start
        return (bool(self.after) and self.quiet_from is not None and self._at != self.quiet_from
                and end - self.quiet_from >= self.after)

    def sent(self, finalize: Sent) -> None:
        self.drop()
        self._at, self._sent = self.quiet_from, finalize

    def take(self, pause_start: int) -> Sent | None:
        """The FINALIZE already sent for the pause the VAD scored (None: FINALIZE now)."""
        if self._sent is not None and self._at == pause_start:
            sent, self._sent = self._sent, None
            return sent
        self.drop()
        self._at = self.quiet_from  # this pause is FINALIZEd with its score now: not again
        return None

    def drop(self) -> None:
        """The FINALIZE sent early got no score (speech went on, or stopped): close its span."""
        sent, self._sent = self._sent, None
        if sent is not None:
            sent[2].set_attribute("turn.outcome", "no turn score: speech went on")
            sent[2].end()

    def reset(self) -> None:
        self.drop()
        self.quiet_from = self._at = None
