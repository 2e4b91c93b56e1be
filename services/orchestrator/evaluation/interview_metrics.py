"""The offline metrics report: facts measured from the transcript and events, not a judgement.

Works with no model and no API key. Every number here comes from timestamps, words and events the
interview stored; every per-criterion finding points at transcript sequence numbers. It says
nothing about how good the answers were: that is the evaluator's job (with evidence) and, in the
end, a person's.

English-only where words matter (fillers, keyword matching): say so wherever it is shown.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from interview.v1 import common_pb2, interviews_pb2

LONG_ANSWER_S = 120.0  # answers over 2 minutes are flagged
SILENCE_STRETCH_S = 60.0  # in coding, a gap this long without the candidate speaking or editing
# Hesitations: the words STT marks Word.filler (both providers spell them so, and the text keeps them).
HESITATIONS = ("um", "umm", "uh", "uhh", "er", "erm", "ah", "hmm")
# Counted as fillers. "like" and "you know" are often not fillers; the report says it counts them all.
FILLERS = (*HESITATIONS, "like", "you know")
_WORD_RE = re.compile(r"[a-z0-9']+")
_STOPWORDS = frozenset("""a an and are as at be been being but by can could did do does for from had has have how
if in into is it its of on or our should so such than that the their them then there these they this those to
was were what when where which while who why will with would you your about after also any both each more most
other some very well just using use uses used able ability shows show clear clearly good""".split())

NOT_A_JUDGEMENT = ("These are measurements of the conversation (timing, words, events), not a judgement of the "
                   "candidate. Filler and keyword counts are English-only and depend on speech recognition.")


def _seconds(ts: object) -> float:
    return ts.seconds + ts.nanos / 1e9  # type: ignore[attr-defined]


def _duration(entry: interviews_pb2.TranscriptEntry) -> float:
    if not entry.HasField("start_time") or not entry.HasField("end_time"):
        return 0.0
    return max(0.0, _seconds(entry.end_time) - _seconds(entry.start_time))


def words(text: str) -> list[str]:
    return _WORD_RE.findall(text.lower())


@dataclass
class Answer:
    """Consecutive candidate entries between two interviewer turns."""

    sequences: list[int]
    start_s: float
    end_s: float
    words: int
    phase_id: str
    latency_s: float | None = None  # interviewer stopped -> this answer started (None: no question before it)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def long(self) -> bool:
        return self.duration_s > LONG_ANSWER_S


@dataclass
class Coverage:
    rubric_item_id: str
    keywords: list[str]
    found: dict[str, list[int]]  # keyword -> candidate sequence numbers where it occurs

    @property
    def share(self) -> float:
        return len(self.found) / len(self.keywords) if self.keywords else 0.0


@dataclass
class PhaseTime:
    phase_id: str
    seconds: float
    budget_s: int

    @property
    def over_budget(self) -> bool:
        return self.budget_s > 0 and self.seconds > self.budget_s


@dataclass
class InterviewMetrics:
    candidate_speech_s: float = 0.0
    interviewer_speech_s: float = 0.0
    answers: list[Answer] = field(default_factory=list)
    candidate_latencies_s: list[float] = field(default_factory=list)  # interviewer stops -> candidate starts
    interviewer_latencies_s: list[float] = field(default_factory=list)  # candidate stops -> interviewer starts
    candidate_words: int = 0
    fillers: dict[str, int] = field(default_factory=dict)
    filler_sequences: list[int] = field(default_factory=list)
    coverage: list[Coverage] = field(default_factory=list)
    phases: list[PhaseTime] = field(default_factory=list)
    code_events: list[tuple[float, str]] = field(default_factory=list)  # (seconds from start, EDIT|RUN|SUBMIT)
    silence_stretches: list[tuple[float, float]] = field(default_factory=list)  # (from, to) s, in coding
    candidate_interrupted_interviewer: list[int] = field(default_factory=list)  # sequences of cut-off agent turns
    interviewer_interrupted_candidate: list[int] = field(default_factory=list)  # agent turns started mid-answer
    incomplete: list[int] = field(default_factory=list)  # entries cut off by a crash or disconnect

    @property
    def talk_ratio(self) -> float:
        """Candidate's share of all speech (0..1)."""
        total = self.candidate_speech_s + self.interviewer_speech_s
        return self.candidate_speech_s / total if total else 0.0

    @property
    def filler_count(self) -> int:
        return sum(self.fillers.values())

    @property
    def fillers_per_100_words(self) -> float:
        return 100.0 * self.filler_count / self.candidate_words if self.candidate_words else 0.0


def rubric_keywords(item: common_pb2.RubricItem, limit: int = 8) -> list[str]:
    """The criterion's own keywords when the plan gives them, else the content words of its
    description, in order, without repeats."""
    if item.keywords:
        return [k.lower().strip() for k in item.keywords if k.strip()][:limit]
    out: list[str] = []
    for w in words(item.description):
        if len(w) >= 4 and w not in _STOPWORDS and w not in out:
            out.append(w)
    return out[:limit]


def _words_re(vocabulary: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(" + "|".join(re.escape(f) for f in sorted(vocabulary, key=len, reverse=True)) + r")\b")


_FILLER_RE = {FILLERS: _words_re(FILLERS), HESITATIONS: _words_re(HESITATIONS)}


def count_fillers(text: str, vocabulary: tuple[str, ...] = FILLERS) -> dict[str, int]:
    """Occurrences of each filler in `text` (FILLERS, or HESITATIONS: only what STT marks a filler)."""
    counts: dict[str, int] = {}
    for match in (_FILLER_RE.get(vocabulary) or _words_re(vocabulary)).finditer(text.lower()):
        counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def compute(entries: Sequence[interviews_pb2.TranscriptEntry], plan: common_pb2.Plan | None = None,
            events: Iterable[interviews_pb2.Event] = ()) -> InterviewMetrics:
    """Measure one interview from its transcript (in sequence order), plan and events."""
    m = InterviewMetrics()
    ordered = sorted(entries, key=lambda e: e.sequence)
    previous: interviews_pb2.TranscriptEntry | None = None
    answer: Answer | None = None
    for entry in ordered:
        duration = _duration(entry)
        if entry.incomplete:
            m.incomplete.append(entry.sequence)
        if entry.role == common_pb2.ROLE_USER:
            m.candidate_speech_s += duration
            n_words = len(words(entry.text))
            m.candidate_words += n_words
            found = count_fillers(entry.text)
            for k, v in found.items():
                m.fillers[k] = m.fillers.get(k, 0) + v
            if found:
                m.filler_sequences.append(entry.sequence)
            latency = None
            if previous is not None and previous.role == common_pb2.ROLE_AGENT and duration:
                latency = max(0.0, _seconds(entry.start_time) - _seconds(previous.end_time))
                m.candidate_latencies_s.append(latency)
            if answer is None:
                answer = Answer([], _seconds(entry.start_time), _seconds(entry.end_time), 0, entry.phase_id, latency)
                m.answers.append(answer)
            answer.sequences.append(entry.sequence)
            answer.end_s = max(answer.end_s, _seconds(entry.end_time))
            answer.words += n_words
        elif entry.role == common_pb2.ROLE_AGENT:
            m.interviewer_speech_s += duration
            if entry.interrupted:
                m.candidate_interrupted_interviewer.append(entry.sequence)
            if previous is not None and previous.role == common_pb2.ROLE_USER and duration:
                gap = _seconds(entry.start_time) - _seconds(previous.end_time)
                if gap < 0:
                    m.interviewer_interrupted_candidate.append(entry.sequence)
                m.interviewer_latencies_s.append(max(0.0, gap))
            answer = None
        previous = entry
    if plan is not None:
        m.coverage = _coverage(ordered, plan)
    _events(m, ordered, plan, list(events))
    return m


def _coverage(entries: Sequence[interviews_pb2.TranscriptEntry], plan: common_pb2.Plan) -> list[Coverage]:
    candidate = [(e.sequence, set(words(e.text)), " " + " ".join(words(e.text)) + " ")
                 for e in entries if e.role == common_pb2.ROLE_USER]
    out = []
    for item in plan.rubric:
        keywords = rubric_keywords(item)
        found = {k: [seq for seq, ws, text in candidate if (k in ws if " " not in k else f" {k} " in text)]
                 for k in keywords}
        out.append(Coverage(item.id, keywords, {k: v for k, v in found.items() if v}))
    return out


def _events(m: InterviewMetrics, entries: Sequence[interviews_pb2.TranscriptEntry],
            plan: common_pb2.Plan | None, events: list[interviews_pb2.Event]) -> None:
    times = [_seconds(e.start_time) for e in entries if e.HasField("start_time")]
    times += [_seconds(e.end_time) for e in entries if e.HasField("end_time")]
    times += [_seconds(ev.time) for ev in events if ev.HasField("time")]
    if not times:
        return
    start, end = min(times), max(times)
    budgets = {p.id: p.time_budget_s for p in plan.phases} if plan is not None else {}
    first_phase = plan.phases[0].id if plan is not None and plan.phases else (entries[0].phase_id if entries else "")
    changes = sorted(((_seconds(ev.time), ev.phase_changed.to_phase_id) for ev in events
                      if ev.WhichOneof("payload") == "phase_changed"), key=lambda c: c[0])
    spans: dict[str, float] = {}
    current, since = first_phase, start
    for at, to in changes:
        spans[current] = spans.get(current, 0.0) + max(0.0, at - since)
        current, since = to, at
    spans[current] = spans.get(current, 0.0) + max(0.0, end - since)
    order = list(budgets) + [p for p in spans if p not in budgets]
    m.phases = [PhaseTime(p, round(spans.get(p, 0.0), 3), budgets.get(p, 0)) for p in order if p in spans]

    kinds = {common_pb2.CODE_EVENT_EDIT: "EDIT", common_pb2.CODE_EVENT_RUN: "RUN", common_pb2.CODE_EVENT_SUBMIT: "SUBMIT"}
    code_times = []
    for ev in events:
        if ev.WhichOneof("payload") == "code_event" and ev.HasField("time"):
            at = _seconds(ev.time)
            code_times.append(at)
            m.code_events.append((round(at - start, 3), kinds.get(ev.code_event.code.kind, "EDIT")))
    m.code_events.sort()
    coding_entries = [e for e in entries if e.mode == common_pb2.MODE_CODING and e.HasField("start_time")]
    if coding_entries or code_times:
        activity = sorted([_seconds(e.start_time) for e in coding_entries if e.role == common_pb2.ROLE_USER]
                          + [_seconds(e.end_time) for e in coding_entries if e.role == common_pb2.ROLE_USER]
                          + code_times)
        window = sorted([_seconds(e.start_time) for e in coding_entries] + code_times)
        if window:
            points = sorted(set([window[0], *activity, window[-1]]))
            for a, b in zip(points, points[1:]):
                if b - a >= SILENCE_STRETCH_S:
                    m.silence_stretches.append((round(a - start, 3), round(b - start, 3)))
