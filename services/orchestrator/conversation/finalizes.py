"""FINALIZEs outstanding on one STT stream, bounded.

At most `MAX_FINALIZES` are sent and unanswered (STT slow or down, the candidate pausing often);
a newer one is held back and sent when an answer frees a slot. Held-back ones coalesce into one,
under the newest id: when sent it closes all the audio since the last FINALIZE sent, so its answer
covers the older ones' words too (`covers`). So at most MAX_FINALIZES + 1 are ever pending, however
long STT stays behind. It also knows what audio an STT stream that broke still owes words for
(`replay_from`). Pure bookkeeping: the listener sends what this says to send.
"""
from __future__ import annotations

import logging

from interview.v1 import common_pb2

log = logging.getLogger("conversation.listener")

MAX_FINALIZES = 4  # FINALIZEs sent and unanswered on the STT stream; later ones wait and coalesce
REPLAY_DEADLINE_MS = 1500  # a reopened stream that owes words: the STT's usual deadline + the audio re-sent


class Finalizes:
    def __init__(self) -> None:
        self.sent: list[str] = []  # ids sent, not yet answered (in order)
        self._held: str | None = None  # the newest one held back while MAX_FINALIZES are sent
        self._held_covers: list[str] = []  # held-back ids the held one replaced
        self.coalesced = 0  # held-back FINALIZEs replaced by a newer one (their words go with it)
        self._covers: dict[str, tuple[str, ...]] = {}  # sent id -> the held-back ids it answers too
        self.traces: dict[str, common_pb2.TraceContext] = {}  # re-sent with them on a reopen
        self._ends: dict[str, int] = {}  # id -> the stream offset its audio ends at
        self.answered_to = 0  # the audio STT has answered for: the newest answered FINALIZE's end
        self.unanswered_from: int | None = None  # where the oldest utterance not yet answered began

    def replay_from(self) -> int | None:
        """Where a reopened STT stream must hear from again so no words are lost: the audio of the
        utterances whose FINALIZEs are unanswered (or in progress), or None."""
        return None if self.unanswered_from is None else max(self.unanswered_from, self.answered_to)

    def deadline_ms(self, audio_end: int, rate: int) -> int:
        """The FINALIZE deadline a reopened STT stream asks for: 0 (the service's) unless it is
        re-sent audio, which it must decode first (answered empty by the usual deadline, the
        words would be dropped)."""
        owed = self.replay_from()
        return 0 if owed is None else min(30_000, REPLAY_DEADLINE_MS + (audio_end - owed) * 1000 // rate)

    def utterance_started(self, audio_from: int) -> None:
        if self.unanswered_from is None:
            self.unanswered_from = audio_from

    def new(self, fid: str, trace: common_pb2.TraceContext, audio_end: int = 0) -> bool:
        """A new FINALIZE: True = send it now (it counts as sent), False = held back."""
        self.traces[fid] = trace
        self._ends[fid] = audio_end
        if len(self.sent) < MAX_FINALIZES:
            self.sent.append(fid)
            return True
        if self._held is not None:  # replaced: its words are closed by the newer one
            self.traces.pop(self._held, None)
            self._ends.pop(self._held, None)
            self._held_covers.append(self._held)
            self.coalesced += 1
        self._held = fid
        log.warning("STT is behind: FINALIZE held back", extra={
            "finalize_id": fid, "outstanding": len(self.sent), "coalesced": self.coalesced})
        return False

    @property
    def pending(self) -> list[str]:
        """Ids not yet answered, in order: those sent, then the one held back."""
        return self.sent + ([self._held] if self._held is not None else [])

    def answered(self, fid: str, speaking: bool = False) -> tuple[tuple[str, ...], str | None]:
        """`fid` was answered: (the held-back ids its answer covers too, a held id to send now)."""
        if fid in self.sent:
            self.sent.remove(fid)
        self.traces.pop(fid, None)
        self.answered_to = max(self.answered_to, self._ends.pop(fid, 0))
        release = None
        if self._held is not None and len(self.sent) < MAX_FINALIZES:
            release, self._held = self._held, None
            self._covers[release], self._held_covers = tuple(self._held_covers), []
            self.sent.append(release)
        if not speaking and not self.pending:
            self.unanswered_from = None  # every word said so far is answered
        return self._covers.pop(fid, ()), release
