"""COACH feedback from the same measurements as the metrics report: specific, tied to what was
said, never a score.

Three uses: `live_notes` words what one answer's measurements support saying right after it (the
conversation loop's coaching.py chooses at most one and the interviewer speaks it); `after_answer`
gives the same kind of lines for the COACH persona's TASK_COACH; `summary` gives the end-of-
practice summary: the three most useful improvements, each pointing at sequence numbers, and the
notes given live.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from interview.v1 import common_pb2, interviews_pb2, llm_pb2
from services.orchestrator.evaluation import interview_metrics as im
from services.orchestrator.evaluation.report import clock, to_dict

TARGET_ANSWER_S = 120
FILLERS_PER_100_WORDS = 3.0  # above this, fillers are worth mentioning
SLOW_START_S = 8.0           # a pause this long before answering is worth a word
SHORT_ANSWER_WORDS = 12      # answers shorter than this rarely show enough
LOW_TALK_RATIO = 0.4
LIVE_HESITATIONS = 3             # hesitations in one answer worth a live note...
HESITATIONS_PER_100_WORDS = 5.0  # ...when they are also this dense
TALK_RATIO_AFTER_ANSWERS = 3     # the talk ratio means something only after a few answers

ANSWER_DURATION, FILLER_RATE = "answer_duration", "filler_rate"
INTERRUPTED_INTERVIEWER, TALK_RATIO = "interrupted_interviewer", "talk_ratio"


@dataclass(frozen=True)
class Note:
    """One thing to say right after an answer: the metric it comes from and the words (spoken)."""

    metric: str
    text: str


@dataclass
class Improvement:
    title: str
    detail: str
    sequences: list[int]
    weight: float  # how much it would help; ranks the summary

    def line(self) -> str:
        where = ", ".join(f"#{s}" for s in self.sequences[:6])
        return f"{self.title}: {self.detail}" + (f" (see {where})" if where else "")


def after_answer(answer: im.Answer, fillers: dict[str, int]) -> list[str]:
    """Feedback on one answer: what was measured and what to try. Empty when nothing stands out."""
    out = []
    if answer.duration_s > TARGET_ANSWER_S:
        out.append(f"That answer ran {clock(answer.duration_s)}; aim for under {TARGET_ANSWER_S // 60} minutes: "
                   "lead with the point, then offer detail.")
    if answer.words and answer.words < SHORT_ANSWER_WORDS:
        out.append(f"That answer was {answer.words} words; add a concrete example or the reason behind it.")
    top = max(fillers.items(), key=lambda kv: kv[1], default=None)
    if top and top[1] >= 3:
        out.append(f"You said '{top[0]}' {top[1]} times — try pausing instead.")
    return out


def _minutes(seconds: float) -> str:
    """For the ear: "over 2 minutes", "about 3 minutes" (never "3:05", which a voice reads badly)."""
    minutes = int(seconds / 60 + 0.5)
    return f"about {minutes} minutes" if minutes > TARGET_ANSWER_S // 60 else f"over {TARGET_ANSWER_S // 60} minutes"


def live_notes(entries: Sequence[interviews_pb2.TranscriptEntry]) -> list[Note]:
    """What the last answer in `entries` (its trailing candidate entries; entries in order, live
    ones may all have sequence 0: the order given is kept) supports saying right after it, most
    useful first. Hesitations only (what STT marks Word.filler): "like" is too often meant."""
    if not entries or entries[-1].role != common_pb2.ROLE_USER:
        return []
    m = im.compute(entries)
    answer = m.answers[-1]
    start = len(entries) - len(answer.sequences)
    said = " ".join(e.text for e in entries[start:])
    before = next((e for e in reversed(entries[:start]) if e.role == common_pb2.ROLE_AGENT), None)
    out = []
    if answer.long:
        out.append(Note(ANSWER_DURATION, f"That answer ran {_minutes(answer.duration_s)}; aim for under "
                                         f"{TARGET_ANSWER_S // 60}: lead with the point, then offer detail."))
    hesitations = im.count_fillers(said, im.HESITATIONS)
    n = sum(hesitations.values())
    if n >= LIVE_HESITATIONS and answer.words and 100 * n / answer.words >= HESITATIONS_PER_100_WORDS:
        word, times = max(hesitations.items(), key=lambda kv: kv[1])
        what = f"'{word}' {times} times" if times == n else f"'{word}' and similar fillers {n} times"
        out.append(Note(FILLER_RATE, f"You said {what} in that answer; try a short silent pause instead."))
    if before is not None and before.interrupted and answer.words >= SHORT_ANSWER_WORDS:
        out.append(Note(INTERRUPTED_INTERVIEWER, "You started answering before I had finished; let the question "
                                                 "finish, then take a second to plan your answer."))
    if len(m.answers) >= TALK_RATIO_AFTER_ANSWERS and m.talk_ratio < LOW_TALK_RATIO:
        out.append(Note(TALK_RATIO, f"So far you have spoken about {round(100 * m.talk_ratio)} percent of the time; "
                                    "the candidate usually talks most, so give fuller answers with an example."))
    return out


def improvements(m: im.InterviewMetrics) -> list[Improvement]:
    """Every improvement the measurements support, most useful first."""
    out: list[Improvement] = []
    long = [a for a in m.answers if a.long]
    if long:
        worst = max(long, key=lambda a: a.duration_s)
        out.append(Improvement(
            "Shorter answers",
            f"{len(long)} answer{'s' if len(long) > 1 else ''} ran over 2 minutes (longest {clock(worst.duration_s)}); "
            "start with a one-sentence answer, then expand if asked",
            [a.sequences[0] for a in long], 3.0 + len(long)))
    if m.filler_count and m.fillers_per_100_words > FILLERS_PER_100_WORDS:
        top = max(m.fillers.items(), key=lambda kv: kv[1])
        out.append(Improvement(
            "Fewer filler words",
            f"you said '{top[0]}' {top[1]} times ({m.fillers_per_100_words:.1f} fillers per 100 words) — "
            "try pausing silently instead", m.filler_sequences, 2.0 + m.fillers_per_100_words / 5))
    slow = [a for a in m.answers if a.latency_s is not None and a.latency_s > SLOW_START_S]
    if slow:
        out.append(Improvement(
            "Start answering sooner",
            f"{len(slow)} answer{'s' if len(slow) > 1 else ''} started more than {SLOW_START_S:.0f} s after the "
            "question; say how you will approach it while you think", [a.sequences[0] for a in slow],
            1.5 + len(slow) / 2))
    short = [a for a in m.answers if 0 < a.words < SHORT_ANSWER_WORDS]
    if len(short) >= 2:
        out.append(Improvement(
            "Say more",
            f"{len(short)} answers were under {SHORT_ANSWER_WORDS} words; add an example, a number or a trade-off",
            [a.sequences[0] for a in short], 1.0 + len(short) / 2))
    if m.candidate_interrupted_interviewer:
        out.append(Improvement(
            "Let the question finish",
            f"you started speaking before the interviewer finished {len(m.candidate_interrupted_interviewer)} time(s)",
            m.candidate_interrupted_interviewer, 1.0))
    missing = [c for c in m.coverage if c.keywords and c.share < 0.34]
    if missing:
        names = ", ".join(c.rubric_item_id for c in missing[:3])
        out.append(Improvement(
            "Cover what is assessed",
            f"little was said about {names}; bring these topics into your answers where they fit",
            [], 0.8 * len(missing)))
    if m.answers and m.talk_ratio < LOW_TALK_RATIO:
        out.append(Improvement(
            "Talk more than the interviewer",
            f"you spoke {m.talk_ratio:.0%} of the time; in an interview the candidate usually speaks most",
            [], 0.7))
    return sorted(out, key=lambda i: -i.weight)


def summary(m: im.InterviewMetrics, limit: int = 3) -> list[Improvement]:
    return improvements(m)[:limit]


def summary_markdown(m: im.InterviewMetrics, notes: Sequence[interviews_pb2.CoachingNote] = ()) -> str:
    """The three improvements, then the notes given between answers (`notes`: Event.coaching)."""
    top = summary(m)
    lines = ["# Practice summary", "", "Feedback from measurements of the conversation, not a score.", ""]
    if not top:
        lines.append("Nothing in the measurements stands out: keep practising with harder questions.")
    lines += [f"{n}. **{i.title}**: {i.detail}" + (" — see " + ", ".join(f"#{s}" for s in i.sequences[:6])
                                                    if i.sequences else "") for n, i in enumerate(top, 1)]
    if notes:
        lines += ["", "## Notes given between answers", ""]
        lines += [f"- {'#' + ', #'.join(str(s) for s in c.sequences) + ': ' if c.sequences else ''}{c.text}"
                  + ("" if c.spoken else " (not heard: the candidate spoke over it)") for c in notes]
    return "\n".join(lines) + "\n"


def feedback_request(lines: list[str], m: im.InterviewMetrics, interview_id: str = "") -> llm_pb2.GenerateRequest:
    """TASK_COACH for the COACH persona: the lines computed here, for the model to phrase (the
    offline provider returns them as they are). The measurements ride along as data."""
    return llm_pb2.GenerateRequest(
        persona=common_pb2.PERSONA_COACH, task=llm_pb2.TASK_COACH, interview_id=interview_id,
        document=json.dumps({"feedback": lines, "metrics": to_dict(m)}),
        options=llm_pb2.GenerationOptions(max_output_tokens=300, timeout_ms=20_000))
