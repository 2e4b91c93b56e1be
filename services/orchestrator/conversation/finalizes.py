"""FINALIZEs outstanding on one STT stream, bounded.

At most `MAX_FINALIZES` are sent and unanswered (STT slow or down, the candidate pausing often);
a newer one is held back and sent when an answer frees a slot. Held-back ones coalesce into one,
under the newest id: when sent it closes all the audio since the last FINALIZE sent, so its answer
covers the older ones' words too (`covers`). So at most MAX_FINALIZES + 1 are ever pending, however
long STT stays behind. Pure bookkeeping: the listener sends what this says to send.
"""
from __future__ import annotations

import logging

from interview.v1 import common_pb2

log = logging.getLogger("conversation.listener")

MAX_FINALIZES = 4  # FINALIZEs sent and unanswered on the STT stream; later ones wait and coalesce


class Finalizes:
    def __init__(self) -> None:
        self.sent: list[str] = []  # ids sent, not yet answered (in order)
        self._held: str | None = None  # the newest one held back while MAX_FINALIZES are sent
        self._held_covers: list[str] = []  # held-back ids the held one replaced
        self.coalesced = 0  # held-back FINALIZEs replaced by a newer one (their words go with it)
        self._covers: dict[str, tuple[str, ...]] = {}  # sent id -> the held-back ids it answers too
        self.traces: dict[str, common_pb2.TraceContext] = {}  # re-sent with them on a reopen

    def new(self, fid: str, trace: common_pb2.TraceContext) -> bool:
        """A new FINALIZE: True = send it now (it counts as sent), False = held back."""
        self.traces[fid] = trace
        if len(self.sent) < MAX_FINALIZES:
            self.sent.append(fid)
            return True
        if self._held is not None:  # replaced: its words are closed by the newer one
            self.traces.pop(self._held, None)
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

    def answered(self, fid: str) -> tuple[tuple[str, ...], str | None]:
        """`fid` was answered: (the held-back ids its answer covers too, a held id to send now)."""
        if fid in self.sent:
            self.sent.remove(fid)
        self.traces.pop(fid, None)
        release = None
        if self._held is not None and len(self.sent) < MAX_FINALIZES:
            release, self._held = self._held, None
            self._covers[release], self._held_covers = tuple(self._held_covers), []
            self.sent.append(release)
        return self._covers.pop(fid, ()), release
