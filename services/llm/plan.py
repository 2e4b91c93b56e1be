"""Where the interview stands in its plan, derived from the request alone.

Both providers need the same answer (current phase, which planned questions were already asked,
what comes next) so that a switch from Gemini to the scripted interviewer mid-interview carries
on where the conversation is. A question counts as asked when the orchestrator says so
(`asked_question_ids`) or when its text appears in one of the interviewer's earlier turns.
"""
from __future__ import annotations

from dataclasses import dataclass

from interview.v1 import common_pb2, llm_pb2
from services.common.plan_questions import asked_in





def _default_plan() -> common_pb2.Plan:
    """Used when a request carries no plan: a short generic interview, so the offline demo works."""
    q = common_pb2.Question
    return common_pb2.Plan(
        name="default", title="General interview", role="software engineer", phases=[
            common_pb2.Phase(id="intro", title="Introduction", kind=common_pb2.PHASE_INTRODUCTION, questions=[
                q(id="intro-1", text="Could you start by telling me a little about yourself and your recent work?",
                  follow_ups=["What was your own part in that work?"])]),
            common_pb2.Phase(id="experience", title="Experience", kind=common_pb2.PHASE_BEHAVIORAL, questions=[
                q(id="exp-1", text="Tell me about a technical problem you solved recently that you are proud of.",
                  follow_ups=["What made it hard, and how did you know your solution worked?"])]),
            common_pb2.Phase(id="questions", title="Your questions", kind=common_pb2.PHASE_CANDIDATE_QUESTIONS,
                             questions=[q(id="cq-1", text="What questions do you have for me?")]),
            common_pb2.Phase(id="wrap-up", title="Wrap-up", kind=common_pb2.PHASE_WRAP_UP),
        ])


DEFAULT_PLAN = _default_plan()


def phase_mode(phase: common_pb2.Phase) -> int:
    """The mode a phase runs in: its own, else CODING for live coding and CONVERSATIONAL otherwise."""
    if phase.mode != common_pb2.MODE_UNSPECIFIED:
        return phase.mode
    return common_pb2.MODE_CODING if phase.kind == common_pb2.PHASE_LIVE_CODING else common_pb2.MODE_CONVERSATIONAL


def kind_name(kind: int) -> str:
    return common_pb2.PhaseKind.Name(kind).removeprefix("PHASE_").replace("_", " ").lower()


@dataclass
class PlanView:
    plan: common_pb2.Plan
    index: int  # of the current phase
    asked: set[str]
    next_hint: common_pb2.Question | None  # the orchestrator's next_question, if any

    @property
    def phase(self) -> common_pb2.Phase:
        return self.plan.phases[self.index]

    @property
    def next_phase(self) -> common_pb2.Phase | None:
        return self.plan.phases[self.index + 1] if self.index + 1 < len(self.plan.phases) else None

    def unasked(self, phase: common_pb2.Phase | None = None) -> list[common_pb2.Question]:
        phase = phase if phase is not None else self.phase
        return [q for q in phase.questions if q.id not in self.asked]

    def next_question(self) -> common_pb2.Question | None:
        """The orchestrator's pick if it has one not yet asked, else the phase's next in order."""
        if self.next_hint is not None and self.next_hint.text and self.next_hint.id not in self.asked:
            return self.next_hint
        remaining = self.unasked()
        return remaining[0] if remaining else None

    def question_by_id(self, qid: str) -> common_pb2.Question | None:
        for phase in self.plan.phases:
            for q in phase.questions:
                if q.id == qid:
                    return q
        return None


def find_phase(plan: common_pb2.Plan, phase_id: str) -> int | None:
    for i, phase in enumerate(plan.phases):
        if phase.id == phase_id:
            return i
    return None


def asked_question_ids(plan: common_pb2.Plan, context: llm_pb2.InterviewContext,
                       history: list[llm_pb2.ChatMessage]) -> set[str]:
    said = [m.text for m in history if m.role == common_pb2.ROLE_AGENT]
    return set(context.asked_question_ids) | asked_in(plan, said)


def view(request: llm_pb2.GenerateRequest) -> PlanView:
    """The plan position of a (validated) request."""
    ctx = request.context
    plan = ctx.plan if ctx.plan.phases else DEFAULT_PLAN
    asked = asked_question_ids(plan, ctx, list(request.history))
    index = find_phase(plan, ctx.phase_id) if ctx.phase_id else None
    if index is None:  # no phase given: the latest phase the conversation has reached
        index = max((i for i, p in enumerate(plan.phases) if any(q.id in asked for q in p.questions)), default=0)
    hint = ctx.next_question if ctx.HasField("next_question") else None
    return PlanView(plan, index, asked, hint)
