"""The CLI's `report` and `evaluate` commands: fetch an interview's evaluation and material through
the public API, then write the recruiter report (HTML) or print the evaluation (JSON / Markdown)."""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from google.protobuf import json_format

from interview.v1 import interviews_pb2
from services.orchestrator.api.client import InterviewsClient
from services.orchestrator.evaluation import interview_metrics as im
from services.orchestrator.evaluation import report
from services.orchestrator.evaluation.html_report import render_html
from services.orchestrator.evaluation.material import Material

IDLE_S = 1.5  # WatchEvents has caught up once nothing new arrives for this long

_STATUS = {interviews_pb2.CRITERION_SCORED: "scored", interviews_pb2.CRITERION_INSUFFICIENT_EVIDENCE:
           "insufficient evidence", interviews_pb2.CRITERION_NOT_ASSESSED: "not assessed"}


async def _events(client: InterviewsClient, iid: str) -> list[interviews_pb2.Event]:
    out: list[interviews_pb2.Event] = []
    stream = client.watch(iid, "").__aiter__()
    try:
        while True:
            try:
                out.append(await asyncio.wait_for(anext(stream), IDLE_S))
            except (StopAsyncIteration, TimeoutError):
                return out
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def fetch(client: InterviewsClient, iid: str, force: bool = False
                ) -> tuple[Material, interviews_pb2.Evaluation]:
    evaluation = await client.evaluate(iid, force=force)
    interview = await client.get(iid)
    entries = [e async for e in client.transcript(iid)]
    events = await _events(client, iid)
    return Material.of(interview, entries, events), evaluation


def evaluation_markdown(ev: interviews_pb2.Evaluation, material: Material) -> str:
    """The evaluation for a terminal or a ticket: advisory label, flags, criteria with evidence."""
    if ev.kind in (interviews_pb2.EVALUATION_METRICS_REPORT, interviews_pb2.EVALUATION_COACHING_SUMMARY):
        body = ev.report_markdown or report.to_markdown(im.compute(material.entries, material.plan, material.events),
                                                        material)
        return (f"> Advisory: a person decides. {ev.reason}\n\n" if ev.reason else "") + body
    lines = [f"# Evaluation of {material.interview.id}", "", "> **Advisory: a person decides.**", "",
             f"Status: {interviews_pb2.EvaluationStatus.Name(ev.status).removeprefix('EVALUATION_').lower()}"
             + (f" — {ev.reason}" if ev.reason else ""), ""]
    if ev.summary:
        lines += [ev.summary, ""]
    if ev.criteria and not ev.reason:
        lines += [f"Confidence (computed): {ev.confidence:.0%}", ""]
    if ev.recommended_next_step:
        lines += [f"**Recommended next step:** {ev.recommended_next_step}", ""]
    for c in ev.criteria:
        score = f"{c.score}" if c.HasField("score") else _STATUS.get(c.status, "–")
        lines.append(f"## {c.rubric_item_id}: {score}" + (" (needs review)" if c.needs_review else ""))
        if c.run_scores:
            lines.append(f"Run scores: {', '.join(str(s) if s else '–' for s in c.run_scores)}")
        if c.justification:
            lines.append(c.justification)
        for e in c.evidence:
            ref = (f"#{e.transcript_sequence}" if e.WhichOneof("ref") == "transcript_sequence"
                   else f"observation {e.observation_id}" if e.observation_id else f"code event {e.code_event_id}")
            lines.append(f"- {ref}: “{e.quote}”" + (" (low STT confidence)" if e.low_stt_confidence else ""))
        if c.evidence_removed:
            lines.append(f"- {c.evidence_removed} unverifiable citation(s) removed")
        lines.append("")
    for title, items in (("Strengths", ev.strengths), ("Concerns", ev.concerns)):
        if items:
            lines += [f"## {title}", *[f"- {s}" for s in items], ""]
    return "\n".join(lines)


async def report_command(client: InterviewsClient, args: argparse.Namespace) -> None:
    material, evaluation = await fetch(client, args.id, args.force)
    html = render_html(material, evaluation)
    Path(args.output).write_text(html, encoding="utf-8")
    print(f"{args.id}: report written to {args.output} ({len(html) // 1024} KB)", file=sys.stderr)


async def evaluate_command(client: InterviewsClient, args: argparse.Namespace) -> None:
    if args.format == "json":
        evaluation = await client.evaluate(args.id, force=args.force)
        print(json_format.MessageToJson(evaluation, preserving_proto_field_name=True, indent=2), flush=True)
        return
    material, evaluation = await fetch(client, args.id, args.force)
    print(evaluation_markdown(evaluation, material), flush=True)
