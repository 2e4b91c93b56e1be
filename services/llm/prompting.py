"""Prompt rendering from versioned template files (services/llm/prompts/<version>/*.md).

Two kinds of text, kept apart on purpose:
- trusted: persona, plan (written by the operator), phase, mode, task, system notes from the
  orchestrator. Only these build the system instruction.
- untrusted: the candidate's words, their name, video observations, OCR'd screen text, code
  snapshots, run output, summaries of earlier turns. These go into the conversation contents
  inside delimited data sections, with our delimiters neutralised inside them, so injected text
  can neither change the system instruction nor close its section.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from interview.v1 import common_pb2, llm_pb2
from services.llm import plan as planning

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
DATA_TAGS = ("interview_data", "candidate_said", "candidate_name", "observation", "observations",
             "code_snapshot", "run_output", "earlier_summary", "transcript")
_TAG_RE = re.compile(r"<(\s*/?\s*)(" + "|".join(DATA_TAGS) + r")", re.IGNORECASE)
_ATTR_RE = re.compile(r"[^a-z0-9_.-]+")
MAX_EVENTS = 6  # system notes carried into the instruction
SUMMARY_MAX_WORDS = 150


def neutralise(text: str) -> str:
    """Untrusted text with our section delimiters defanged (`<` -> `‹` before a tag name only,
    so ordinary code such as `a < b` or `<div>` stays readable)."""
    return _TAG_RE.sub(lambda m: "‹" + m.group(1) + m.group(2), text)


def _attr(value: str) -> str:
    return _ATTR_RE.sub("_", value.lower())[:40]


def candidate_turn(text: str) -> str:
    return f"<candidate_said>{neutralise(text)}</candidate_said>"


@dataclass(frozen=True)
class Rendered:
    system_instruction: str
    contents: list[tuple[str, str]]  # (role "user" | "model", text), consecutive roles merged
    tools: tuple[str, ...]           # function names offered (no_reply, advance_phase, end_interview)


class PromptSet:
    """One version of the templates, loaded once at start-up (a missing file fails fast)."""

    FILES = ("system", "interviewer", "coach", "mode_conversational", "mode_coding", "task_reply",
             "task_greeting", "task_resume", "task_check_in", "task_wrap_up", "summarize", "data")

    def __init__(self, version: str = "v1", root: Path = PROMPTS_DIR):
        folder = root / version
        if not folder.is_dir():
            raise FileNotFoundError(f"no prompt set {version!r} under {root}")
        self.version = version
        self.t = {name: Template((folder / f"{name}.md").read_text().strip()) for name in self.FILES}

    # ---- trusted: the system instruction ----

    def system_instruction(self, req: llm_pb2.GenerateRequest, pv: planning.PlanView | None = None) -> str:
        if req.task == llm_pb2.TASK_SUMMARIZE:
            return self.t["summarize"].substitute(max_words=SUMMARY_MAX_WORDS)
        pv = pv or planning.view(req)
        phase = pv.phase
        mode = req.context.mode or planning.phase_mode(phase)
        persona = "coach" if req.persona == common_pb2.PERSONA_COACH else "interviewer"
        nq = pv.next_question()
        left = req.context.phase_time_left_s
        cp = pv.plan.coding_problem
        coding = (f"Coding problem: {cp.title}. {cp.statement} Examples: {'; '.join(cp.examples) or 'none'}."
                  if cp.title or cp.statement else "")
        questions = "; ".join(f"[{q.id}{', asked' if q.id in pv.asked else ''}] {q.text}"
                              for q in phase.questions) or "none (follow the phase goals)"
        events = [m.text for m in req.history if m.role == common_pb2.ROLE_SYSTEM][-MAX_EVENTS:]
        return self.t["system"].substitute(
            persona=self.t[persona].template,
            plan_title=pv.plan.title or pv.plan.name or "Interview",
            role=req.context.role or pv.plan.role or "the open position",
            phase_title=phase.title or phase.id,
            phase_kind=planning.kind_name(phase.kind),
            time_left=(f"{left} s left in this phase" if left > 0 else
                       f"over its time budget by {-left} s" if left < 0 else "no time budget given"),
            phase_goals="; ".join(phase.goals) or "cover the planned questions",
            phase_questions=questions,
            next_question=f"[{nq.id}] {nq.text}" if nq else "none left in this phase",
            coding_problem=coding,
            phases=", ".join(f"{p.id} ({p.title or planning.kind_name(p.kind)})" for p in pv.plan.phases),
            mode_rules=self.t["mode_coding" if mode == common_pb2.MODE_CODING else "mode_conversational"].template,
            task=self._task(req, pv),
            events=("Recent interview events (from the interview system): " + " | ".join(events)) if events else "",
        ).strip()

    def _task(self, req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> str:
        if req.task == llm_pb2.TASK_GREETING:
            hint = f"The plan suggests this opening line: {pv.plan.greeting}" if pv.plan.greeting else ""
            return self.t["task_greeting"].substitute(greeting_hint=hint).strip()
        if req.task == llm_pb2.TASK_RESUME:
            return self.t["task_resume"].template
        if req.task == llm_pb2.TASK_CHECK_IN:
            return self.t["task_check_in"].template
        if req.task == llm_pb2.TASK_WRAP_UP:
            if pv.next_phase is None or pv.phase.kind == common_pb2.PHASE_WRAP_UP:
                return self.t["task_wrap_up"].substitute(
                    wrap_up_reason="the interview is ending.",
                    wrap_up_action="Thank the candidate, say the team will follow up, and call end_interview.")
            return self.t["task_wrap_up"].substitute(
                wrap_up_reason="this phase is over its time budget.",
                wrap_up_action=f"Call advance_phase to {pv.next_phase.id} and ask the first question of the next phase.")
        return self.t["task_reply"].template

    # ---- untrusted: the data section and the conversation ----

    def data_section(self, req: llm_pb2.GenerateRequest) -> str:
        ctx = req.context
        items: list[str] = []
        if ctx.candidate_name:
            items.append(f"<candidate_name>{neutralise(ctx.candidate_name)}</candidate_name>")
        if ctx.summary:
            items.append(f"<earlier_summary>{neutralise(ctx.summary)}</earlier_summary>")
        if ctx.observations:
            obs = [f'<observation type="{_attr(o.type)}" source="{_attr(common_pb2.VideoSource.Name(o.source))}" '
                   f'confidence="{o.confidence:.2f}">{neutralise(o.detail)}</observation>'
                   for o in ctx.observations]
            items.append("<observations>\n" + "\n".join(obs) + "\n</observations>")
        if ctx.HasField("code") and (ctx.code.content or ctx.code.diff):
            kind = common_pb2.CodeEventKind.Name(ctx.code.kind).removeprefix("CODE_EVENT_").lower()
            body = ctx.code.content or ctx.code.diff
            items.append(f'<code_snapshot event="{_attr(kind)}" language="{_attr(ctx.code.language)}">\n'
                         f"{neutralise(body)}\n</code_snapshot>")
            if ctx.code.output:
                items.append(f"<run_output>{neutralise(ctx.code.output)}</run_output>")
        if not items:
            items.append("(nothing yet)")
        return self.t["data"].substitute(items="\n".join(items))

    def render(self, req: llm_pb2.GenerateRequest) -> Rendered:
        if req.task == llm_pb2.TASK_SUMMARIZE:
            system = self.system_instruction(req)
            lines = [f"{_speaker(m)}: {neutralise(m.text)}" for m in req.history if m.role != common_pb2.ROLE_SYSTEM]
            return Rendered(system, [("user", "<transcript>\n" + "\n".join(lines) + "\n</transcript>")], ())
        pv = planning.view(req)
        system = self.system_instruction(req, pv)
        contents: list[tuple[str, str]] = []
        for m in req.history:
            if m.role == common_pb2.ROLE_USER:
                contents.append(("user", candidate_turn(m.text)))
            elif m.role == common_pb2.ROLE_AGENT:
                contents.append(("model", m.text + (" [cut off: the candidate interrupted]" if m.interrupted else "")))
        if not contents or contents[-1][0] != "user":
            contents.append(("user", "(The candidate has said nothing new. Follow the task in your instructions.)"))
        contents.append(("user", self.data_section(req)))
        return Rendered(system, _merge(contents), self._tools(req, pv))

    @staticmethod
    def _tools(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> tuple[str, ...]:
        if req.task in (llm_pb2.TASK_GREETING, llm_pb2.TASK_RESUME, llm_pb2.TASK_CHECK_IN, llm_pb2.TASK_SUMMARIZE):
            return ()  # openings and check-ins say something and change nothing
        tools = ("advance_phase", "end_interview")
        mode = req.context.mode or planning.phase_mode(pv.phase)
        if req.task in (llm_pb2.TASK_REPLY, llm_pb2.TASK_UNSPECIFIED) and mode == common_pb2.MODE_CODING:
            tools = ("no_reply", *tools)
        return tools


def _speaker(m: llm_pb2.ChatMessage) -> str:
    return "Candidate" if m.role == common_pb2.ROLE_USER else "Interviewer"


def _merge(contents: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join consecutive turns of one role: the API wants user and model turns to alternate."""
    out: list[tuple[str, str]] = []
    for role, text in contents:
        if out and out[-1][0] == role:
            out[-1] = (role, out[-1][1] + "\n\n" + text)
        else:
            out.append((role, text))
    return out
