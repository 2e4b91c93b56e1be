"""What the offline interviewer says about what it sees: the video observations in the request's
context (the newest few, chosen by the orchestrator).

Observations are untrusted data (text read off the candidate's screen): nothing here follows
them, and only what is parsed out of them is spoken — identifiers (word characters), a closed list
of constructs, and the observation's own wording reduced to plain words — never raw screen text.
"""
from __future__ import annotations

import re

from interview.v1 import common_pb2, llm_pb2

# "can you see my screen?" and friends, matched against normalize(text) (lower case, no punctuation)
SEE_SCREEN = re.compile(r"\b(can|could|do|are) you (see|seeing|read|view) (my|the|what s on my|what i m sharing)\b"
                        r"|\bis my screen (visible|shared|showing|coming through)\b"
                        r"|\bcan you see (it|this|that|what i m doing|what i ve written|my code)\b")

_DEFINING = re.compile(r"\bdefining ([A-Za-z_]\w*(?:, [A-Za-z_]\w*)*)")
_USING = {  # the video service's constructs (services/video/providers/describe.py) -> what to ask about
    "a dict lookup": ("with a dictionary", "walk me through the lookup"),
    "a set": ("with a set", "walk me through what goes into the set"),
    "sorting": ("by sorting", "tell me why you sort and what it costs"),
    "a heap": ("with a heap", "walk me through what the heap holds"),
    "a deque/queue": ("with a queue", "walk me through the queue"),
    "binary search": ("with a binary search", "walk me through the loop bounds"),
    "recursion": ("recursively", "walk me through the base case"),
}
_PLAIN = re.compile(r"[^A-Za-z0-9_ ,.'()-]")


def newest(ctx: llm_pb2.InterviewContext, source: int = common_pb2.VIDEO_SOURCE_SCREEN,
           types: tuple[str, ...] = ("code_observation", "screen_content")) -> common_pb2.Observation | None:
    """The newest observation of a source and type (the orchestrator sends them oldest first)."""
    return next((o for o in reversed(ctx.observations) if o.source == source and o.type in types), None)


def code_remark(obs: common_pb2.Observation) -> str:
    """"I see you've defined two_sum with a dictionary — walk me through the lookup." or ""."""
    names = _DEFINING.search(obs.detail)
    if not names:
        return ""
    defined = names.group(1).split(", ")[:2]
    what = " and ".join(defined)
    for label, (how, ask) in _USING.items():
        if label in obs.detail:
            return f"I see you've defined {what} {how}. Can you {ask}?"
    return f"I see you've defined {what}. Can you walk me through how it works?"


def mentioned(obs: common_pb2.Observation, history: list[llm_pb2.ChatMessage]) -> bool:
    """Whether an earlier agent turn already remarked on this observation's code (names match)."""
    names = _DEFINING.search(obs.detail)
    if not names:
        return False
    said = " ".join(m.text for m in history if m.role == common_pb2.ROLE_AGENT and "I see you've defined" in m.text)
    return all(n in said for n in names.group(1).split(", ")[:2])


def screen_answer(ctx: llm_pb2.InterviewContext) -> str:
    """An answer to "can you see my screen?" from the newest screen observation — or an honest no."""
    obs = newest(ctx)
    if obs is None:
        return ("I can't see your screen right now. If you've just started sharing, give it a few seconds; "
                "otherwise you can describe what you're looking at.")
    detail = _PLAIN.sub(" ", obs.detail).strip().rstrip(".")
    detail = re.sub(r"\s+", " ", detail)[:120]
    return f"Yes, I can see your screen. It shows {detail or 'a window'}."
