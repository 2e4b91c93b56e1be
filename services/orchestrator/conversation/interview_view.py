"""The live session's view of its interview: mode, phase (and the phase clock), config, code,
status, and the state message media shows. One place answers "which phase is this?".

It changes only through the control stream (`Session.apply_event`) and a rejoin's pick-up; it
holds no streams and sends nothing itself.
"""
from __future__ import annotations

import logging

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from services.common.clock import Clock
from services.orchestrator.conversation import modes

log = logging.getLogger("conversation.interview")


class InterviewView:
    def __init__(self, interview: interviews_pb2.Interview, clock: Clock, *, conversational_silence_ms: int,
                 coding_silence_ms: int, check_in_s: float):
        self.interview = interview
        self.iid = interview.id
        self.clock = clock
        self._silence_ms = (conversational_silence_ms, coding_silence_ms)
        self._check_in_s = check_in_s
        self.phase_started = clock.monotonic()
        self._wrapped_phase = ""
        self.code: common_pb2.CodeSnapshot | None = None

    @property
    def mode(self) -> int:
        return self.interview.mode

    @property
    def phase_id(self) -> str:
        return self.interview.phase_id

    def phase(self) -> common_pb2.Phase | None:
        return next((p for p in self.interview.plan.phases if p.id == self.interview.phase_id), None)

    def phase_title(self) -> str:
        phase = self.phase()
        return phase.title if phase else ""

    def next_phase_id(self) -> str:
        ids = [p.id for p in self.interview.plan.phases]
        i = ids.index(self.interview.phase_id) if self.interview.phase_id in ids else -1
        return ids[i + 1] if 0 <= i < len(ids) - 1 else ""

    # ---- the phase clock ----

    def phase_time_left_s(self) -> int:
        phase = self.phase()
        if phase is None or not phase.time_budget_s:
            return 0
        return int(phase.time_budget_s - (self.clock.monotonic() - self.phase_started))

    def wrap_up_pending(self) -> bool:
        """Would the next reply wrap the phase up? (asks without deciding: a speculative reply)"""
        return self.interview.phase_id != self._wrapped_phase and self.phase_time_left_s() < 0

    def wrap_up_due(self) -> bool:
        """Over the phase's budget, the next reply wraps the phase up (once per phase: if the LLM
        stays in it, e.g. the candidate is mid-answer, later turns are ordinary replies)."""
        if self.interview.phase_id == self._wrapped_phase or self.phase_time_left_s() >= 0:
            return False
        self._wrapped_phase = self.interview.phase_id
        log.info("phase over budget: wrapping up", extra={"phase_id": self._wrapped_phase})
        return True

    # ---- what a mode means here ----

    def vad_params(self) -> common_pb2.VadParams:
        return modes.vad_params(self.interview.mode, self.interview.config, *self._silence_ms)

    def coding(self) -> bool:
        return self.interview.mode == modes.CODING

    def check_in_timeout_s(self) -> float:
        return modes.check_in_timeout_s(self.interview.config, self._check_in_s)

    # ---- changes from the control stream ----

    def set_phase(self, phase_id: str) -> str:
        """Enter a phase (its clock starts now); returns the system note for the LLM."""
        self.interview.phase_id = phase_id
        self.phase_started = self.clock.monotonic()
        return f"Phase: {self.phase_title() or phase_id}."

    def set_code(self, code: common_pb2.CodeSnapshot) -> None:
        self.code = common_pb2.CodeSnapshot()
        self.code.CopyFrom(code)

    def state(self, agent_speaking: bool) -> session_pb2.ServerMessage:
        return session_pb2.ServerMessage(state=session_pb2.SessionState(
            phase_id=self.interview.phase_id, phase_title=self.phase_title(), mode=self.interview.mode,
            agent_speaking=agent_speaking, status=self.interview.status))
