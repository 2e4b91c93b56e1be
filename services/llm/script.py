"""The offline interviewer's rules: a deterministic function from a request to one turn.

It walks the plan (see plan.py for where the interview stands): greets, asks each phase's planned
questions in order, acknowledges answers briefly (the coach persona gives concrete feedback
instead, never a score), asks one follow-up when an answer is very short, repeats its last
question on request or after a reconnect (welcoming the candidate back), moves on (ADVANCE_PHASE)
when a phase is done or over time, stays quiet in CODING mode unless addressed (NO_REPLY), checks
in during silent coding, and wraps up (END_INTERVIEW). It uses what it sees (seeing.py): during
live coding, after the candidate speaks, it asks about newly observed code once ("I see you've
defined two_sum with a dictionary..."), and it answers "can you see my screen?" from the newest
screen observation or says honestly that it can't. Candidate text and observations are only ever
matched against patterns, never followed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from interview.v1 import common_pb2, llm_pb2
from services.common.plan_questions import normalize
from services.llm import plan as planning
from services.llm import seeing
from services.llm.providers.base import Act

SHORT_ANSWER_WORDS = 8
ACKS = ("Thank you.", "Got it, thanks.", "Okay, that's helpful.", "Thanks for walking me through that.",
        "I see, thank you.")
CHECK_INS = ("How's it going? If you'd like a hint or want to talk your approach through, just ask.",
             "Just checking in. Take your time, and tell me if you'd like a nudge.",
             "How are you getting on? Feel free to tell me where you are.")
GENERIC_FOLLOW_UP = "Could you say a bit more about that, ideally with a concrete example?"
GENERIC_HINTS = ("Start with the simplest approach that works, even if it is slow, then look for repeated work you can avoid.",
                 "Try a small example by hand and watch which values you keep recomputing.",
                 "Think about which data structure would let you look things up in constant time.")
WALKTHROUGH = "Please walk me through your solution, and tell me its time and space complexity."
CODING_RULES = ("Think out loud if you like; I'll stay quiet while you work unless you talk to me. "
                "Tell me when you're done.")


def _rx(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns))


# Matched against normalize(text): lower case, punctuation folded to spaces.
REPEAT = _rx(r"\brepeat\b", r"\bsay (that|it) again\b", r"\bcome again\b", r"\bpardon\b",
             r"\bdidn t (catch|hear|get|understand) (that|it|the question)\b", r"\bwhat was the question\b",
             r"\bone more time\b", r"^sorry what\b")
DONE = _rx(r"\bi m done\b", r"\bi am done\b", r"\bi think i m done\b", r"\bi m finished\b", r"\bi am finished\b",
           r"\bi ve finished\b", r"\bthat s my (solution|answer|code)\b", r"\bready to submit\b",
           r"\bi think that s it\b", r"\bdone coding\b")
HELP = _rx(r"\bhint\b", r"\bhelp\b", r"\bi m stuck\b", r"\bi am stuck\b", r"\bnudge\b", r"\bclue\b",
           r"\bi m lost\b", r"\bnot sure how to (start|proceed|continue)\b")
ADDRESSED = _rx(r"\b(can|could|would|will|should|may) (you|i|we)\b", r"\bdo (you|i|we) (need|have|want)\b",
                r"\b(is|would) (it|that) (ok|okay|fine|allowed|acceptable|correct|right)\b",
                r"\bam i (allowed|supposed|right|on the right track)\b", r"\bwhat do you (think|mean)\b",
                r"\bquestion for you\b", r"\bexcuse me\b", r"^(hey|hi|hello)\b", r"\binterviewer\b",
                r"\bare (we|you) (looking|expecting)\b")
QUESTION_START = re.compile(r"^(what|how|why|when|where|who|which|is|are|do|does|did|can|could|will|would|"
                            r"i d like to know|i was wondering|wondering)\b")
NO_MORE = re.compile(r"^(no|nope|nah|not really|none|nothing( else)?|i m good|i am good|i think that s (it|all)|"
                     r"that s (it|all)|no more)\b")


@dataclass
class Turn:
    text: str
    actions: list[Act] = field(default_factory=list)


def decide(req: llm_pb2.GenerateRequest) -> Turn:
    pv = planning.view(req)
    task = req.task or llm_pb2.TASK_REPLY
    if task == llm_pb2.TASK_SUMMARIZE:
        return Turn(summarize(req, pv))
    if task == llm_pb2.TASK_GREETING:
        return _greet(req, pv)
    if task == llm_pb2.TASK_RESUME:
        return _resume(req, pv)
    if task == llm_pb2.TASK_CHECK_IN:
        done = sum(1 for m in req.history if m.role == common_pb2.ROLE_AGENT and m.text in CHECK_INS)
        return Turn(CHECK_INS[done % len(CHECK_INS)])
    if task == llm_pb2.TASK_WRAP_UP:
        return _move_on(req, pv, "We're about out of time for this part.")
    return _reply(req, pv)


# ---- building blocks ----

def _name(req: llm_pb2.GenerateRequest) -> str:
    # Only the first word, letters only: the name is untrusted text and is spoken back.
    first = re.sub(r"[^\w'-]", "", (req.context.candidate_name or "").split(" ")[0])[:30]
    return first


def _closing(req: llm_pb2.GenerateRequest) -> str:
    name = _name(req)
    return (f"That's everything I wanted to cover. Thank you very much for your time today{', ' + name if name else ''}. "
            "The team will review the interview and get back to you about next steps. Goodbye!")


def _opening(pv: planning.PlanView, phase: common_pb2.Phase) -> str:
    """What to say to start a phase: its first unasked question (the problem, for live coding)."""
    remaining = pv.unasked(phase)
    q = remaining[0] if remaining else None
    if phase.kind == common_pb2.PHASE_LIVE_CODING:
        cp = pv.plan.coding_problem
        problem = q.text if q else " ".join(x for x in (cp.title + "." if cp.title else "", cp.statement) if x)
        return f"Now let's do some live coding. {problem or 'Please solve the problem in the editor.'} {CODING_RULES}"
    if q is not None:
        return q.text
    if phase.kind == common_pb2.PHASE_CANDIDATE_QUESTIONS:
        return "What questions do you have for me?"
    return f"Let's talk about {(phase.title or phase.id).lower()}. Tell me about your experience there."


def _greet(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> Turn:
    if pv.plan.greeting:
        intro = pv.plan.greeting
    else:
        name = _name(req)
        role = req.context.role or pv.plan.role
        parts = ", ".join((p.title or p.id).lower() for p in pv.plan.phases if p.kind != common_pb2.PHASE_WRAP_UP)
        intro = (f"Hi{' ' + name if name else ''}, thanks for joining. I'm your interviewer today"
                 f"{' for the ' + role + ' role' if role else ''}. We'll go through a few parts: {parts}.")
    opening = _opening(pv, pv.phase)
    if opening in intro:  # a greeting that already asks the first question (demo.yaml) must not repeat it
        return Turn(intro)
    return Turn(f"{intro} {opening}")


def _resume(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> Turn:
    """Back after a dropped connection: no second greeting, just the question that was open."""
    name = _name(req)
    return Turn(f"Welcome back{', ' + name if name else ''}. We got cut off. {_repeat_text(req, pv)}")


def _move_on(req: llm_pb2.GenerateRequest, pv: planning.PlanView, lead: str) -> Turn:
    """Leave the current phase: the next phase's opening with ADVANCE_PHASE, or the closing."""
    nxt = pv.next_phase
    if pv.phase.kind == common_pb2.PHASE_WRAP_UP or nxt is None:
        return Turn(_closing(req), [Act(llm_pb2.END_INTERVIEW, reason="the plan is finished")])
    if nxt.kind == common_pb2.PHASE_WRAP_UP and not nxt.questions:
        return Turn(_closing(req), [Act(llm_pb2.ADVANCE_PHASE, nxt.id, "all phases covered"),
                                    Act(llm_pb2.END_INTERVIEW, reason="the plan is finished")])
    reason = "over the phase's time budget" if req.context.phase_time_left_s < 0 else "the phase's questions are covered"
    transition = "" if nxt.kind == common_pb2.PHASE_LIVE_CODING else f"Let's move on to {(nxt.title or nxt.id).lower()}."
    text = " ".join(x for x in (lead, transition, _opening(pv, nxt)) if x)
    return Turn(text, [Act(llm_pb2.ADVANCE_PHASE, nxt.id, reason)])


def _ask_next(req: llm_pb2.GenerateRequest, pv: planning.PlanView, lead: str) -> Turn:
    nq = pv.next_question()
    if nq is not None and req.context.phase_time_left_s >= 0:
        return Turn(f"{lead} {nq.text}".strip())
    return _move_on(req, pv, lead)


def _last_message(req: llm_pb2.GenerateRequest, role: int) -> llm_pb2.ChatMessage:
    return next((m for m in reversed(req.history) if m.role == role), llm_pb2.ChatMessage())


def _last(req: llm_pb2.GenerateRequest, role: int) -> str:
    return _last_message(req, role).text


def _current_question(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> tuple[common_pb2.Question | None, bool]:
    """The planned question under discussion, and whether the latest agent turn asked it
    (False means the latest agent turn was something else, e.g. already a follow-up)."""
    questions = [q for p in pv.plan.phases for q in p.questions]
    first = True
    for m in reversed(req.history):
        if m.role != common_pb2.ROLE_AGENT:
            continue
        said = normalize(m.text)
        for q in questions:
            if normalize(q.text) and normalize(q.text) in said:
                return q, first
        first = False
    return None, False


def _feedback(answer: str) -> str:
    """The coach's concrete, score-free feedback on one answer."""
    words = len(answer.split())
    if words < 25:
        return "Good start. To make it stronger, add a concrete example: what you did, how you did it, and the result."
    if not re.search(r"\d", answer):
        return "That's clear and well structured. One way to make it stronger is to quantify the impact, for example with a number."
    return "Nice, that's concrete and specific, and the numbers make the impact clear. Keep that structure."


def _repeat_text(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> str:
    """The interviewer's open question: the planned one its last turn asked, else that turn's last
    question sentence, else the whole turn (unless it was cut off: a fragment is not worth
    repeating), else the current phase's opening."""
    q, _ = _current_question(req, pv)
    last = _last_message(req, common_pb2.ROLE_AGENT)
    last_agent = last.text
    if q is not None and normalize(q.text) in normalize(last_agent):
        return q.text
    questions = [s.strip() for s in re.findall(r"[^.!?]*\?", last_agent)]
    if questions:
        return questions[-1]
    return last_agent if last_agent and not last.interrupted else _opening(pv, pv.phase)


def _hint(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> str:
    given = sum(1 for m in req.history if m.role == common_pb2.ROLE_AGENT and m.text.startswith("Here's a nudge"))
    q, _ = _current_question(req, pv)
    hints = [*(q.follow_ups if q else []), *GENERIC_HINTS]
    return f"Here's a nudge: {hints[given % len(hints)]}"


# ---- replies ----

def _reply(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> Turn:
    said = normalize(_last(req, common_pb2.ROLE_USER))
    last_agent = _last(req, common_pb2.ROLE_AGENT)
    mode = req.context.mode or planning.phase_mode(pv.phase)
    if REPEAT.search(said):
        return Turn(f"Of course. {_repeat_text(req, pv)}")
    if pv.phase.kind == common_pb2.PHASE_WRAP_UP:
        return Turn(_closing(req), [Act(llm_pb2.END_INTERVIEW, reason="the plan is finished")])
    if seeing.SEE_SCREEN.search(said):
        return Turn(seeing.screen_answer(req.context))
    if mode == common_pb2.MODE_CODING:
        return _coding_reply(req, pv, said, last_agent)
    if pv.phase.kind == common_pb2.PHASE_CANDIDATE_QUESTIONS and pv.next_question() is None:
        if NO_MORE.search(said):
            return _move_on(req, pv, "Thanks for your questions.")
        return Turn("That's a good question. I'll make sure the hiring team follows up with a proper answer. "
                    "Is there anything else you'd like to ask?")
    lead = _feedback(said) if req.persona == common_pb2.PERSONA_COACH else ACKS[
        sum(1 for m in req.history if m.role == common_pb2.ROLE_USER) % len(ACKS)]
    q, just_asked = _current_question(req, pv)
    if q is not None and just_asked and len(said.split()) < SHORT_ANSWER_WORDS and req.context.phase_time_left_s >= 0:
        return Turn(q.follow_ups[0] if q.follow_ups else GENERIC_FOLLOW_UP)
    return _ask_next(req, pv, lead)


def _coding_reply(req: llm_pb2.GenerateRequest, pv: planning.PlanView, said: str, last_agent: str) -> Turn:
    if WALKTHROUGH in last_agent:  # they answered our walk-through question: the coding part is done
        return _move_on(req, pv, "Thanks, that's a clear explanation.")
    if DONE.search(said):
        return Turn(f"Great. {WALKTHROUGH}")
    if HELP.search(said):
        return Turn(_hint(req, pv))
    if ADDRESSED.search(said):
        return Turn("Good question. Make the assumption you think is most reasonable, say it out loud, and go with it.")
    if last_agent in CHECK_INS:  # their answer to our check-in is addressed to us
        return Turn("Sounds good. Take your time.")
    code = seeing.newest(req.context, types=("code_observation",))
    if code is not None and not seeing.mentioned(code, list(req.history)) and (remark := seeing.code_remark(code)):
        return Turn(remark)  # new code on screen since we last asked about it: once per function
    return Turn("", [Act(llm_pb2.NO_REPLY, reason="thinking aloud, not addressed to the interviewer")])


# ---- summaries ----

def _first_sentence(text: str, max_words: int = 30) -> str:
    sentence = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0]
    words = sentence.split()
    return " ".join(words[:max_words]) + ("..." if len(words) > max_words else "")


def summarize(req: llm_pb2.GenerateRequest, pv: planning.PlanView) -> str:
    """Extractive: each planned question asked, with the first sentence of each answer to it."""
    questions = [q for p in pv.plan.phases for q in p.questions]
    topic = "the opening"
    answers: dict[str, list[str]] = {}
    order: list[str] = []
    for m in req.history:
        if m.role == common_pb2.ROLE_AGENT:
            said = normalize(m.text)
            for q in questions:
                if normalize(q.text) and normalize(q.text) in said:
                    topic = q.text
            if topic not in answers:
                answers[topic] = []
                order.append(topic)
        elif m.role == common_pb2.ROLE_USER and m.text.strip() and not REPEAT.search(normalize(m.text)):
            answers.setdefault(topic, [])
            if topic not in order:
                order.append(topic)
            answers[topic].append(_first_sentence(m.text))
    parts = []
    for topic in order:
        if answers[topic]:
            parts.append(f'Asked about "{topic}", the candidate said: {" ".join(answers[topic])}'
                         if topic != "the opening" else f'At the opening, the candidate said: {" ".join(answers[topic])}')
    return " ".join(parts) or "Nothing of substance was said yet."
