"""Which planned questions the interviewer has asked, read from what it said.

One definition for both sides: the LLM service reads it off a request's history, and the
orchestrator keeps it for the whole interview (`InterviewContext.asked_question_ids`), because the
history it sends is bounded (compaction, a rejoin's restore) and a question asked before that
window would otherwise look unasked and be asked again.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from interview.v1 import common_pb2

_NON_WORD = re.compile(r"[^a-z0-9]+")


def normalize(text: str) -> str:
    """Lower case, punctuation folded to single spaces: what question matching compares."""
    return _NON_WORD.sub(" ", text.lower()).strip()


def asked_in(plan: common_pb2.Plan, said: Iterable[str]) -> set[str]:
    """Ids of the plan's questions whose text appears in any of the interviewer's `said` turns."""
    spoken = [normalize(text) for text in said]
    return {q.id for phase in plan.phases for q in phase.questions
            if (needle := normalize(q.text)) and any(needle in s for s in spoken)}
