"""The offline metrics report as JSON and Markdown: measurements, plainly labelled as not a
judgement. Works with no model and no key; the same numbers feed the coaching feedback."""
from __future__ import annotations

from services.orchestrator.evaluation import interview_metrics as im
from services.orchestrator.evaluation.material import Material


def clock(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


def to_dict(m: im.InterviewMetrics) -> dict:
    """Every measurement, JSON-ready, with the statement that it is not a judgement."""
    return {
        "not_a_judgement": im.NOT_A_JUDGEMENT,
        "talk_ratio": round(m.talk_ratio, 3),
        "candidate_speech_s": round(m.candidate_speech_s, 1),
        "interviewer_speech_s": round(m.interviewer_speech_s, 1),
        "answers": [{"sequences": a.sequences, "duration_s": round(a.duration_s, 1), "words": a.words,
                     "phase_id": a.phase_id, "over_2_min": a.long} for a in m.answers],
        "response_latency_s": {"candidate": [round(x, 2) for x in m.candidate_latencies_s],
                               "interviewer": [round(x, 2) for x in m.interviewer_latencies_s]},
        "fillers": {"counts": m.fillers, "total": m.filler_count, "per_100_words": round(m.fillers_per_100_words, 2),
                    "sequences": m.filler_sequences, "candidate_words": m.candidate_words},
        "rubric_keyword_coverage": [{"rubric_item_id": c.rubric_item_id, "keywords": c.keywords, "found": c.found,
                                     "share": round(c.share, 3)} for c in m.coverage],
        "phases": [{"phase_id": p.phase_id, "seconds": p.seconds, "budget_s": p.budget_s,
                    "over_budget": p.over_budget} for p in m.phases],
        "coding": {"events": [{"at_s": t, "kind": k} for t, k in m.code_events],
                   "silence_stretches": [{"from_s": a, "to_s": b} for a, b in m.silence_stretches]},
        "interruptions": {"candidate_interrupted_interviewer": m.candidate_interrupted_interviewer,
                          "interviewer_interrupted_candidate": m.interviewer_interrupted_candidate},
        "incomplete_entries": m.incomplete,
    }


def _seqs(seqs: list[int], limit: int = 8) -> str:
    shown = ", ".join(f"#{s}" for s in seqs[:limit])
    return shown + (f" and {len(seqs) - limit} more" if len(seqs) > limit else "") if seqs else "none"


def _avg(xs: list[float]) -> str:
    return f"{sum(xs) / len(xs):.1f} s (n={len(xs)})" if xs else "n/a"


def to_markdown(m: im.InterviewMetrics, material: Material | None = None) -> str:
    lines = ["# Interview metrics report", ""]
    if material is not None:
        iv = material.interview
        lines += [f"Interview `{iv.id}` · {iv.role or iv.plan.role or 'role not given'} · "
                  f"duration {clock(material.duration_s)}", ""]
    lines += [f"> **Not a judgement.** {im.NOT_A_JUDGEMENT}", "", "## Conversation", "",
              f"- Talk ratio (candidate's share of speech): {m.talk_ratio:.0%} "
              f"({m.candidate_speech_s:.0f} s candidate, {m.interviewer_speech_s:.0f} s interviewer)",
              f"- Answers: {len(m.answers)}; over 2 minutes: "
              + (", ".join(f"{clock(a.duration_s)} at {_seqs(a.sequences)}" for a in m.answers if a.long) or "none"),
              f"- Response latency: candidate {_avg(m.candidate_latencies_s)}, "
              f"interviewer {_avg(m.interviewer_latencies_s)}",
              f"- Filler words: {m.filler_count} in {m.candidate_words} words "
              f"({m.fillers_per_100_words:.1f} per 100 words"
              + (": " + ", ".join(f"'{k}' ×{v}" for k, v in sorted(m.fillers.items(), key=lambda kv: -kv[1]))
                 if m.fillers else "")
              + f"); entries {_seqs(m.filler_sequences)}. 'like' and 'you know' are counted every time.",
              f"- Interruptions: candidate cut in on the interviewer at {_seqs(m.candidate_interrupted_interviewer)}; "
              f"interviewer started before the candidate finished at {_seqs(m.interviewer_interrupted_candidate)}",
              f"- Entries cut off by a disconnect or crash: {_seqs(m.incomplete)}", ""]
    if m.coverage:
        lines += ["## Rubric keyword coverage", "",
                  "Whether the criterion's words were said — not whether they were said well.", "",
                  "| criterion | keywords said | where |", "|---|---|---|"]
        for c in m.coverage:
            said = ", ".join(c.found) or "none"
            where = "; ".join(f"{k}: {_seqs(v, 4)}" for k, v in c.found.items()) or "–"
            lines.append(f"| {c.rubric_item_id} | {len(c.found)}/{len(c.keywords)} ({said}) | {where} |")
        lines.append("")
    if m.phases:
        lines += ["## Time per phase", "", "| phase | time | budget |", "|---|---|---|"]
        for p in m.phases:
            budget = clock(p.budget_s) if p.budget_s else "–"
            lines.append(f"| {p.phase_id} | {clock(p.seconds)}{' (over)' if p.over_budget else ''} | {budget} |")
        lines.append("")
    if m.code_events or m.silence_stretches:
        lines += ["## Coding timeline", ""]
        lines += [f"- {clock(t)} {k}" for t, k in m.code_events]
        lines += [f"- silence (no speech or edits) {clock(a)}–{clock(b)}" for a, b in m.silence_stretches]
        lines.append("")
    return "\n".join(lines)
