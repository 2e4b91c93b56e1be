"""The fairness post-check: what the evaluator says about accent, grammar of non-native speakers,
appearance, emotions, confidence or personality is not evidence of skill, and is dropped.

The EVALUATOR prompt already forbids it; this check does not trust the prompt. A justification
loses the offending sentences (the rest stays); a strength or concern that mentions such a trait is
dropped whole. Matching is on words and short phrases, English only, and errs towards dropping:
a false drop costs a sentence, a false keep costs a candidate.
"""
from __future__ import annotations

import re

_TERMS = [
    r"accents?", r"accented", r"pronunciation", r"pronounc\w*", r"non[- ]?native", r"native speakers?",
    r"grammar", r"grammatical\w*", r"english (?:skills?|level|proficiency|fluency)", r"fluen(?:t|cy) in english",
    r"appearance", r"looks?(?: \w+)? (?:professional|tired|nervous|young|old)", r"attire", r"dress(?:ed|es)?",
    r"clothing", r"clothes", r"outfit", r"hair", r"eye contact", r"smil\w*", r"facial", r"body language",
    r"emotions?", r"emotional\w*", r"nervous\w*", r"anxious\w*", r"anxiety", r"stressed out", r"calm\w*",
    r"excited", r"enthusias\w*", r"passionate", r"upset", r"frustrat\w*",
    r"confiden(?:ce|t|tly)", r"self[- ]assured", r"hesitant", r"shy\w*", r"timid\w*",
    r"personalit\w*", r"introvert\w*", r"extrovert\w*", r"charism\w*", r"likeab\w*", r"friendl\w*",
    r"energetic", r"warmth", r"gender", r"his age", r"her age", r"their age",
]
_PATTERN = re.compile(r"\b(?:" + "|".join(_TERMS) + r")\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def mentions_protected(text: str) -> bool:
    return bool(_PATTERN.search(text))


def clean_justification(text: str) -> tuple[str, int]:
    """The justification without sentences about protected traits, and how many were dropped."""
    sentences = [s for s in _SENTENCE.split(text.strip()) if s]
    kept = [s for s in sentences if not mentions_protected(s)]
    return " ".join(kept), len(sentences) - len(kept)


def clean_list(items: list[str]) -> tuple[list[str], int]:
    kept = [s for s in items if s.strip() and not mentions_protected(s)]
    return kept, len([s for s in items if s.strip()]) - len(kept)
