"""Guard rails for interviews that cannot be assessed: no scores, and a reason a person understands.

Checked in code before any model is asked, so a near-empty interview never gets a confident-looking
score. Thresholds are deliberately low: they catch degenerate cases, not short interviews.
"""
from __future__ import annotations

from services.orchestrator.evaluation.material import Material, seconds

MIN_CANDIDATE_SPEECH_S = 30.0
MIN_CANDIDATE_WORDS = 40  # when entries carry no timestamps, words stand in for time
# end reasons the system writes when nobody finished the interview on purpose
ABANDON_REASONS = ("abandoned", "candidate_left", "no_show", "timeout", "idle", "disconnected", "expired")


def candidate_speech_s(material: Material) -> float:
    return sum(max(0.0, seconds(e.end_time) - seconds(e.start_time)) for e in material.candidate_entries
               if e.HasField("start_time") and e.HasField("end_time"))


def degenerate_reason(material: Material, min_speech_s: float = MIN_CANDIDATE_SPEECH_S) -> str:
    """Why this interview cannot be assessed, or "" when it can."""
    answers = [e for e in material.candidate_entries if e.text.strip()]
    if not answers:
        return "The candidate gave no answers: there is nothing to assess."
    speech = candidate_speech_s(material)
    timed = any(e.HasField("start_time") and e.HasField("end_time") for e in answers)
    n_words = sum(len(e.text.split()) for e in answers)
    if (timed and speech < min_speech_s) or (not timed and n_words < MIN_CANDIDATE_WORDS):
        amount = f"{speech:.0f} s" if timed else f"{n_words} words"
        return (f"Only {amount} of candidate speech was recorded (at least {min_speech_s:.0f} s are needed): "
                "too little to assess anything.")
    reason = material.interview.end_reason.lower()
    if any(r in reason for r in ABANDON_REASONS):
        reached = material.phases_reached()
        return (f"The interview was abandoned ({material.interview.end_reason}) after "
                f"{len(reached)} of {len(material.plan.phases) or len(reached)} phases: not assessed.")
    return ""
