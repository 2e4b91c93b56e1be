"""The preemptive reply: at a pause the end-of-turn policy did not commit at once (an UNDECIDED
pause, a long answer's COMMIT that waits, a HOLD's fallback), the reply is prepared — LLM and TTS
run, its audio held — so that it plays the moment the wait ends. A HOLD (the candidate most likely
goes on) starts it only `HOLD_LEAD_MS` before its fallback, not at the pause, to waste less. It
plays only if the turn commits with the same words; otherwise it is cancelled silently. Nothing of
it (audio, transcript, history, check-in timer, actions, asked questions) exists before the commit.

At most one is in flight. Its starts, cancellations and wasted tokens are counted for the
candidate turn's TurnMetrics (`take_counts`).
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from interview.v1 import llm_pb2
from services.common.clock import Timer
from services.orchestrator.conversation.turn_policy import Decision
from services.orchestrator.conversation.turns import AgentTurn, TurnTimes

if TYPE_CHECKING:
    from services.orchestrator.conversation.floor import Floor

log = logging.getLogger("conversation.preemptive")

HOLD_LEAD_MS = 1000  # a HOLD's reply starts this long before its fallback commits (LLM + TTS's first audio)


class PreemptiveReply:
    def __init__(self, floor: "Floor"):
        self.floor = floor
        self.on = False
        self.turn: AgentTurn | None = None  # the speculative reply, audio held
        self.task: asyncio.Task[None] | None = None
        self.text = ""  # the candidate's words it was generated from
        self._counts = [0, 0, 0]  # this candidate turn: starts, cancellations, wasted tokens
        self._timer: Timer | None = None  # a HOLD's later start

    def matches(self, text: str) -> bool:
        return self.turn is not None and self.text == text

    def maybe_start(self) -> None:
        f = self.floor
        v = f.eot.verdict
        if (not self.on or not f.eot.on or f.eot.committed or v is None
                or f.turn is not None or not f.transcript.pending_user or f.listener.finalizing
                or f.view.wrap_up_pending() or f.stopped()):
            return
        if self.matches(f.transcript.pending_text()):
            return
        if v.decision is Decision.HOLD and f.eot.speech_end is not None:
            later = f.eot.speech_end + (v.wait_ms - HOLD_LEAD_MS) / 1000 - f.clock.monotonic()
            if later > 0:
                self._cancel_timer()
                self._timer = f.clock.call_later(later, self.maybe_start)
                return
        self.drop("replaced")
        gid = f.next_generation_id()
        request = f.requests.generate(llm_pb2.TASK_REPLY, gid)
        turn = AgentTurn(gid, llm_pb2.TASK_REPLY, request, f.playback_rate, f.clock, f.outbound,
                         margin_s=f.s.playback_margin_ms / 1000, held=True,
                         times=TurnTimes(stt_final=f.clock.monotonic()),
                         user_texts=list(f.transcript.pending_user), on_first_audio=f.publish_metrics)
        turn.trace.CopyFrom(f.utterance_trace)
        request.trace.CopyFrom(turn.trace)
        self.turn, self.text = turn, f.transcript.pending_text()
        self._counts[0] += 1
        log.info("speculative reply started", extra={"generation_id": gid, "reason": v.reason})
        self.task = f.spawn_turn(turn, f"spec-{gid}")

    def promote(self) -> tuple[AgentTurn, asyncio.Task[None] | None]:
        """The turn committed with the words it answers: it becomes the turn (the floor releases it)."""
        turn, self.turn = self.turn, None
        assert turn is not None
        turn.speculative = True
        self.take_counts(turn)
        log.info("speculative reply used", extra={"generation_id": turn.generation_id})
        return turn, self.task

    def drop(self, reason: str) -> None:
        """Cancel the speculative reply silently: it sent nothing and recorded nothing."""
        self._cancel_timer()
        turn, self.turn = self.turn, None
        if turn is None:
            return
        turn.cancel_calls()
        if self.task is not None:
            self.task.cancel()
        tokens = turn.output_tokens()
        self._counts[1] += 1
        self._counts[2] += tokens
        log.info("speculative reply cancelled", extra={"generation_id": turn.generation_id, "reason": reason,
                                                       "wasted_tokens": tokens})

    def take_counts(self, turn: AgentTurn) -> None:
        turn.spec_counts = (self._counts[0], self._counts[1], self._counts[2])
        self._counts = [0, 0, 0]

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
