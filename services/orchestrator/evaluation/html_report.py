"""The recruiter report: one self-contained HTML file a person can read at a glance.

No external assets (inline CSS and SVG, no scripts), readable from 375 px phones to desktops, and
every piece of interview text is escaped: a transcript line holding `<script>` stays text. Evidence
links jump to the quoted transcript line (#t-SEQ), observation (#o-ID) or code event (#c-ID).
"""
from __future__ import annotations

import datetime as dt
from html import escape

from interview.v1 import common_pb2, interviews_pb2, session_pb2
from services.orchestrator.evaluation import interview_metrics as im
from services.orchestrator.evaluation.document import scale
from services.orchestrator.evaluation.evidence import code_text
from services.orchestrator.evaluation.material import Material, seconds
from services.orchestrator.evaluation.report import clock

E = escape
_ROLE = {common_pb2.ROLE_USER: "Candidate", common_pb2.ROLE_AGENT: "Interviewer", common_pb2.ROLE_SYSTEM: "System"}
_STATUS = {session_pb2.INTERVIEW_CREATED: "created", session_pb2.INTERVIEW_ACTIVE: "in progress",
           session_pb2.INTERVIEW_ENDED: "ended"}
_CRITERION = {interviews_pb2.CRITERION_SCORED: "scored",
              interviews_pb2.CRITERION_INSUFFICIENT_EVIDENCE: "insufficient evidence",
              interviews_pb2.CRITERION_NOT_ASSESSED: "not assessed"}
_KIND = {interviews_pb2.EVALUATION_RUBRIC: "Rubric evaluation",
         interviews_pb2.EVALUATION_METRICS_REPORT: "Metrics report (no model judgement)",
         interviews_pb2.EVALUATION_COACHING_SUMMARY: "Practice summary"}
_CODE = {common_pb2.CODE_EVENT_EDIT: "edit", common_pb2.CODE_EVENT_RUN: "run", common_pb2.CODE_EVENT_SUBMIT: "submit"}
PALETTE = ("#1f5f99", "#8a4b08", "#2e6b30", "#6b3a8a", "#8a1f3d", "#3d5a66", "#5c5c1f")  # >= 4.5:1 on white

CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#fff}
header,main,footer{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ccc}
h3{font-size:1.05rem}
a{color:#0b4f8a}a:focus{outline:3px solid #0b4f8a}
.advisory{display:inline-block;background:#fff3cd;color:#5c4400;border:1px solid #8a6d00;border-radius:.3rem;
 padding:.1rem .5rem;font-weight:600}
dl.meta{display:flex;flex-wrap:wrap;gap:.25rem 1.5rem;margin:.5rem 0}dl.meta div{display:flex;gap:.4rem}
dl.meta dt{font-weight:600}dl.meta dd{margin:0}
.box{border:1px solid #bbb;border-radius:.4rem;padding:.75rem 1rem;margin:1rem 0;background:#f7f9fb}
.flags li{margin:.2rem 0}
table{border-collapse:collapse;width:100%}th,td{border:1px solid #ccc;padding:.4rem .5rem;text-align:left;
 vertical-align:top}th{background:#eef2f6}
td,li,p,blockquote{overflow-wrap:anywhere}
.score{font-weight:700;white-space:nowrap}.review{color:#8a1f1f;font-weight:600}
.evidence{margin:.3rem 0 0;padding-left:1.1rem}
blockquote{margin:.2rem 0;padding-left:.6rem;border-left:3px solid #999;color:#333}
svg{width:100%;height:auto;display:block;max-width:100%}
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1rem;padding:0;list-style:none;margin:.3rem 0}
.legend span{display:inline-block;width:.9rem;height:.9rem;margin-right:.3rem;vertical-align:middle}
ol.transcript{list-style:none;padding:0}ol.transcript li{padding:.4rem .5rem;border-bottom:1px solid #e3e3e3}
ol.transcript li:target{background:#fff3cd;outline:2px solid #8a6d00}
ol.transcript .who{font-weight:600}.candidate .who{color:#1f5f99}.interviewer .who{color:#5a5a5a}
.tag{font-size:.8rem;border:1px solid #777;border-radius:.2rem;padding:0 .25rem;margin-left:.3rem;color:#333}
.cited{border-left:4px solid #1f5f99}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f4f4f4;padding:.5rem;border-radius:.3rem;
 font-size:.85rem;max-height:24rem;overflow-y:auto}
.muted{color:#555}th .muted{font-weight:400}
@media (max-width:640px){
 body{font-size:15px}
 table.rubric thead{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
 table.rubric,table.rubric tbody,table.rubric tr,table.rubric td,table.rubric th{display:block;width:100%}
 table.rubric tr{border:1px solid #bbb;margin:.6rem 0;border-radius:.3rem}
 table.rubric td,table.rubric th{border:0;border-bottom:1px solid #e3e3e3}
 table.rubric td::before{content:attr(data-label);display:block;font-weight:600;font-size:.85rem;color:#444}
}
"""


def _date(ts: object) -> str:
    if not ts.seconds:  # type: ignore[attr-defined]
        return "–"
    return dt.datetime.fromtimestamp(seconds(ts), dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _ref(ev: interviews_pb2.Evidence) -> tuple[str, str]:
    which = ev.WhichOneof("ref")
    if which == "transcript_sequence":
        return f"t-{ev.transcript_sequence}", f"#{ev.transcript_sequence}"
    if which == "observation_id":
        return f"o-{_anchor(ev.observation_id)}", f"observation {ev.observation_id}"
    return f"c-{_anchor(ev.code_event_id)}", f"code event {ev.code_event_id}"


def _anchor(event_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in event_id)


def _header(material: Material, evaluation: interviews_pb2.Evaluation | None) -> str:
    iv = material.interview
    role = iv.role or iv.plan.role or "Interview"
    items = [("Role", role), ("Date", _date(iv.started_at if iv.started_at.seconds else iv.created_at)),
             ("Duration", clock(material.duration_s)), ("Status", _STATUS.get(iv.status, "unknown")
                                                         + (f" ({iv.end_reason})" if iv.end_reason else "")),
             ("Plan", f"{iv.plan.title or iv.plan.name} v{iv.plan.version or '–'}"), ("Interview", iv.id)]
    if iv.candidate.name:
        items.insert(0, ("Candidate", iv.candidate.name))
    meta = "".join(f"<div><dt>{E(k)}</dt><dd>{E(v)}</dd></div>" for k, v in items)
    kind = _KIND.get(evaluation.kind, "Evaluation") if evaluation else "No evaluation stored"
    return (f'<header><p><span class="advisory">Advisory — a person decides</span></p>'
            f"<h1>{E(role)}: interview report</h1><p class=\"muted\">{E(kind)}</p><dl class=\"meta\">{meta}</dl></header>")


def _summary(evaluation: interviews_pb2.Evaluation | None, material: Material) -> str:
    out = ['<section aria-labelledby="s-summary"><h2 id="s-summary">Recommendation and flags</h2><div class="box">']
    if evaluation is None:
        out.append("<p>No evaluation has been stored for this interview yet; the measurements below are not a "
                   "judgement.</p></div></section>")
        return "".join(out)
    if evaluation.recommended_next_step:
        out.append(f"<p><strong>Recommended next step:</strong> {E(evaluation.recommended_next_step)}</p>")
    if evaluation.kind == interviews_pb2.EVALUATION_RUBRIC and evaluation.criteria and not evaluation.reason:
        out.append(f"<p><strong>Confidence (computed from run agreement, verified evidence and speech recognition "
                   f"confidence):</strong> {evaluation.confidence:.0%}</p>")
    if evaluation.summary:
        out.append(f"<p>{E(evaluation.summary)}</p>")
    flags = []
    if evaluation.status == interviews_pb2.EVALUATION_FAILED:
        flags.append(f"The evaluation failed: {evaluation.reason}")
    elif evaluation.reason:
        flags.append(evaluation.reason)
    for c in evaluation.criteria:
        if c.needs_review:
            flags.append(f"{c.rubric_item_id}: the independent runs disagreed ({', '.join(map(str, c.run_scores))}); "
                         "review by a person")
        if c.status == interviews_pb2.CRITERION_INSUFFICIENT_EVIDENCE:
            flags.append(f"{c.rubric_item_id}: no verified evidence, not scored")
    low = sorted({e.transcript_sequence for c in evaluation.criteria for e in c.evidence if e.low_stt_confidence})
    if low:
        flags.append("Evidence from entries with low speech-recognition confidence (may be transcription errors, "
                     "never held against the candidate): " + ", ".join(f"#{s}" for s in low))
    if flags:
        out.append('<ul class="flags">' + "".join(f"<li>{E(f)}</li>" for f in flags) + "</ul>")
    for title, items in (("Strengths", evaluation.strengths), ("Concerns" if evaluation.kind != interviews_pb2.
                         EVALUATION_COACHING_SUMMARY else "Most useful improvements", evaluation.concerns)):
        if items:
            out.append(f"<h3>{title}</h3><ul>" + "".join(f"<li>{_linkify(s)}</li>" for s in items) + "</ul>")
    out.append("</div></section>")
    return "".join(out)


def _linkify(text: str) -> str:
    """Escaped text with '#12'-style sequence references turned into links to the transcript."""
    import re
    return re.sub(r"#(\d+)", lambda m: f'<a href="#t-{m.group(1)}">#{m.group(1)}</a>', E(text))


def _rubric(evaluation: interviews_pb2.Evaluation | None, material: Material) -> str:
    if not material.plan.rubric:
        return ""
    assessed = {c.rubric_item_id: c for c in evaluation.criteria} if evaluation else {}
    rows = []
    for item in material.plan.rubric:
        lo, hi = scale(item)
        c = assessed.get(item.id)
        if c is not None and c.HasField("score"):
            score = f'<span class="score">{c.score} / {hi}</span>'
        else:
            score = E(_CRITERION.get(c.status, "not assessed") if c else "not assessed")
        if c is not None and c.needs_review:
            score += '<br><span class="review">needs review</span>'
        runs = ", ".join(str(s) if s else "–" for s in c.run_scores) if c and c.run_scores else "–"
        evidence = ""
        if c is not None and c.evidence:
            lis = []
            for ev in c.evidence:
                href, label = _ref(ev)
                low = ' <span class="tag">low STT confidence</span>' if ev.low_stt_confidence else ""
                lis.append(f'<li><a href="#{href}">{E(label)}</a>{low}<blockquote>{E(ev.quote)}</blockquote></li>')
            evidence = '<ul class="evidence">' + "".join(lis) + "</ul>"
        removed = (f'<p class="muted">{c.evidence_removed} unverifiable citation(s) removed</p>'
                   if c is not None and c.evidence_removed else "")
        rows.append(
            f'<tr id="r-{_anchor(item.id)}"><th scope="row" data-label="Criterion">{E(item.id)}'
            f'<br><span class="muted">{E(item.description)}</span></th>'
            f'<td data-label="Score (scale {lo}–{hi})">{score}</td><td data-label="Run scores">{E(runs)}</td>'
            f'<td data-label="Justification and evidence">{E(c.justification) if c else ""}{evidence}{removed}</td></tr>')
    return ('<section aria-labelledby="s-rubric"><h2 id="s-rubric">Rubric</h2>'
            '<p class="muted">Scores only on verified evidence; each link jumps to the quoted line.</p>'
            '<table class="rubric"><thead><tr><th scope="col">Criterion</th><th scope="col">Score</th>'
            '<th scope="col">Run scores</th><th scope="col">Justification and evidence</th></tr></thead><tbody>'
            + "".join(rows) + "</tbody></table></section>")


def _phase_svg(material: Material, m: im.InterviewMetrics) -> str:
    total = sum(p.seconds for p in m.phases)
    if not total:
        return "<p>No phase timing recorded.</p>"
    w, x, bars, legend = 1000.0, 0.0, [], []
    for i, p in enumerate(m.phases):
        width = w * p.seconds / total
        color = PALETTE[i % len(PALETTE)]
        bars.append(f'<rect x="{x:.1f}" y="0" width="{max(width, 1):.1f}" height="36" fill="{color}">'
                    f"<title>{E(p.phase_id)}: {clock(p.seconds)}</title></rect>")
        x += width
        budget = f" of {clock(p.budget_s)} budget" + (" (over)" if p.over_budget else "") if p.budget_s else ""
        legend.append(f'<li><span style="background:{color}"></span>{E(p.phase_id)} {clock(p.seconds)}{E(budget)}</li>')
    label = "Phase timeline: " + "; ".join(f"{p.phase_id} {clock(p.seconds)}" for p in m.phases)
    return (f'<svg viewBox="0 0 1000 36" role="img" aria-label="{E(label)}" preserveAspectRatio="none">'
            + "".join(bars) + f'</svg><ul class="legend">{"".join(legend)}</ul>')


def _talk_svg(m: im.InterviewMetrics) -> str:
    """Bars in SVG, numbers in HTML (SVG text would shrink to nothing on a phone)."""
    total = m.candidate_speech_s + m.interviewer_speech_s
    if not total:
        return "<p>No speech recorded.</p>"
    rows = [("Candidate", m.candidate_speech_s, PALETTE[0]), ("Interviewer", m.interviewer_speech_s, PALETTE[1])]
    bars = "".join(f'<rect x="0" y="{i * 26}" width="{max(1.0, 1000 * s / total):.1f}" height="20" fill="{c}">'
                   f"<title>{who}: {clock(s)}</title></rect>" for i, (who, s, c) in enumerate(rows))
    label = f"Talk time: candidate {clock(m.candidate_speech_s)}, interviewer {clock(m.interviewer_speech_s)}"
    legend = "".join(f'<li><span style="background:{c}"></span>{who} {clock(s)} ({s / total:.0%})</li>'
                     for who, s, c in rows)
    return (f'<svg viewBox="0 0 1000 46" role="img" aria-label="{E(label)}" preserveAspectRatio="none">{bars}</svg>'
            f'<ul class="legend">{legend}</ul>')


def _latency_svg(m: im.InterviewMetrics) -> str:
    series = [("candidate", m.candidate_latencies_s, PALETTE[0]), ("interviewer", m.interviewer_latencies_s, PALETTE[1])]
    n = max(len(m.candidate_latencies_s), len(m.interviewer_latencies_s))
    if not n:
        return "<p>No turns to measure.</p>"
    top = max([*m.candidate_latencies_s, *m.interviewer_latencies_s, 1.0])
    h, slot = 140.0, 960.0 / n
    bar = max(1.0, slot / 2 - 2)
    parts = [f'<line x1="0" y1="{h}" x2="1000" y2="{h}" stroke="#555"/>']
    for k, (who, values, color) in enumerate(series):
        for i, v in enumerate(values):
            height = h * v / top
            parts.append(f'<rect x="{20 + i * slot + k * (bar + 1):.1f}" y="{h - height:.1f}" width="{bar:.1f}" '
                         f'height="{max(height, 0.5):.1f}" fill="{color}"><title>turn {i + 1}: {who} '
                         f"{v:.1f} s</title></rect>")
    label = (f"Response latency per turn over {n} turns: candidate mean "
             f"{sum(m.candidate_latencies_s) / max(1, len(m.candidate_latencies_s)):.1f} s, interviewer mean "
             f"{sum(m.interviewer_latencies_s) / max(1, len(m.interviewer_latencies_s)):.1f} s")
    legend = "".join(f'<li><span style="background:{c}"></span>{w} (question end → answer start)</li>'
                     if w == "candidate" else f'<li><span style="background:{c}"></span>{w} (answer end → reply start)</li>'
                     for w, _, c in series)
    return (f'<svg viewBox="0 0 1000 {h + 4:.0f}" role="img" aria-label="{E(label)}">' + "".join(parts)
            + f'</svg><ul class="legend">{legend}<li>bar height: 0 to {top:.1f} s, one pair per turn</li></ul>')


def _charts(material: Material, m: im.InterviewMetrics) -> str:
    return ('<section aria-labelledby="s-charts"><h2 id="s-charts">Timeline and talk time</h2>'
            f'<p class="muted">{E(im.NOT_A_JUDGEMENT)}</p>'
            f"<h3>Phases</h3>{_phase_svg(material, m)}<h3>Talk time</h3>{_talk_svg(m)}"
            f"<h3>Response latency per turn</h3>{_latency_svg(m)}"
            f"<p>Filler words: {m.filler_count} in {m.candidate_words} words ({m.fillers_per_100_words:.1f} per 100). "
            f"Answers over 2 minutes: {sum(a.long for a in m.answers)} of {len(m.answers)}.</p></section>")


def _events(material: Material) -> str:
    start = material.start_s
    obs = []
    for eid, ev in material.observations.items():
        o = ev.observation
        obs.append(f'<li id="o-{_anchor(eid)}">{clock(seconds(ev.time) - start)} · {E(o.type)} '
                   f'({E(common_pb2.VideoSource.Name(o.source).removeprefix("VIDEO_SOURCE_").lower())}, '
                   f"confidence {o.confidence:.2f}): {E(o.detail)}</li>")
    code = []
    for eid, ev in material.code_events.items():
        c = ev.code_event.code
        body = code_text(ev)
        code.append(f'<li id="c-{_anchor(eid)}">{clock(seconds(ev.time) - start)} · {_CODE.get(c.kind, "edit")}'
                    f'{" · " + E(c.language) if c.language else ""}' + (f"<pre>{E(body)}</pre>" if body else "") + "</li>")
    return ('<section aria-labelledby="s-events"><h2 id="s-events">Observations and code events</h2>'
            "<h3>Video observations</h3>" + (f"<ul>{''.join(obs)}</ul>" if obs else "<p>None.</p>")
            + "<h3>Code events</h3>" + (f"<ul>{''.join(code)}</ul>" if code else "<p>None.</p>") + "</section>")


def _transcript(material: Material, evaluation: interviews_pb2.Evaluation | None) -> str:
    cited = {e.transcript_sequence for c in (evaluation.criteria if evaluation else []) for e in c.evidence
             if e.WhichOneof("ref") == "transcript_sequence"}
    start = material.start_s
    items = []
    for e in material.entries:
        who = _ROLE.get(e.role, "Unknown")
        tags = []
        if e.phase_id:
            tags.append(E(e.phase_id))
        if e.mode == common_pb2.MODE_CODING:
            tags.append("coding mode")
        if e.interrupted:
            tags.append("interrupted")
        if e.incomplete:
            tags.append("incomplete")
        if e.role == common_pb2.ROLE_USER and 0 < e.stt_confidence < 0.6:
            tags.append("low STT confidence")
        when = clock(seconds(e.start_time) - start) if e.HasField("start_time") else ""
        classes = who.lower() + (" cited" if e.sequence in cited else "")
        items.append(f'<li id="t-{e.sequence}" class="{classes}"><span class="muted">#{e.sequence} {when}</span> '
                     f'<span class="who">{who}</span>' + "".join(f'<span class="tag">{t}</span>' for t in tags)
                     + f"<br>{E(e.text)}</li>")
    return ('<section aria-labelledby="s-transcript"><h2 id="s-transcript">Transcript</h2>'
            '<p class="muted">Speech recognition may be wrong; cited lines have a blue edge.</p>'
            f'<ol class="transcript">{"".join(items)}</ol></section>')


def render_html(material: Material, evaluation: interviews_pb2.Evaluation | None = None,
                metrics: im.InterviewMetrics | None = None) -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    m = metrics or im.compute(material.entries, material.plan, material.events)
    iv = material.interview
    footer = (f"<footer><p class=\"muted\">Advisory: this report supports a person's decision and is not one. "
              f"Generated {E(dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'))}"
              + (f" · model {E(evaluation.model)} · prompt {E(evaluation.prompt_version)} · evaluation "
                 f"{E(evaluation.evaluation_id)} · read up to event {E(evaluation.last_event_id)}" if evaluation else "")
              + "</p></footer>")
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>Interview report: {E(iv.role or iv.plan.role or iv.id)}</title><style>{CSS}</style></head><body>"
            + _header(material, evaluation) + "<main>" + _summary(evaluation, material) + _rubric(evaluation, material)
            + _charts(material, m) + _events(material) + _transcript(material, evaluation) + "</main>" + footer
            + "</body></html>\n")
