"""The rubric evaluation: two independent EVALUATOR runs, every citation verified, scores
calibrated and confidence computed in code, then the fairness post-check. Advisory: a person decides.

Provider-agnostic: `generate` is any coroutine taking a GenerateRequest and returning the
GenerateFinal (the orchestrator passes its Llm client). A run whose answer is not valid JSON of the
schema fails the whole evaluation (the LLM service has already retried once): never a half result.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jsonschema

from interview.v1 import common_pb2, interviews_pb2, llm_pb2
from services.common import evaluation_contract as contract
from services.orchestrator.evaluation import coaching, fairness, guards, report
from services.orchestrator.evaluation import interview_metrics as im
from services.orchestrator.evaluation.document import build, response_schema, scale
from services.orchestrator.evaluation.evidence import LOW_STT_CONFIDENCE, verify
from services.orchestrator.evaluation.material import Material

Generate = Callable[[llm_pb2.GenerateRequest], Awaitable[llm_pb2.GenerateFinal]]
SCORED = interviews_pb2.CRITERION_SCORED
INSUFFICIENT = interviews_pb2.CRITERION_INSUFFICIENT_EVIDENCE
NOT_ASSESSED = interviews_pb2.CRITERION_NOT_ASSESSED


class EvaluationFailed(Exception):
    """No result can be stored; the message is meant for a person."""


class NotAssessed(Exception):
    """The provider declined to judge (the offline provider): store the metrics report instead."""


@dataclass(frozen=True)
class Settings:
    review_margin: int = 1            # |run A - run B| above this -> needs_review
    low_stt_confidence: float = LOW_STT_CONFIDENCE
    min_candidate_speech_s: float = guards.MIN_CANDIDATE_SPEECH_S
    seeds: tuple[int, int] = (1013, 2027)
    timeout_ms: int = contract.DEFAULT_TIMEOUT_MS
    max_output_tokens: int = 8192
    provider: str = ""                # "" = the LLM service's chain


def _timestamp_now() -> object:
    from google.protobuf import timestamp_pb2
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(time.time_ns())
    return ts


def criteria_orders(plan: common_pb2.Plan) -> list[list[str]]:
    """Run 1 reads the criteria in plan order, run 2 in reverse (with one criterion: the same)."""
    ids = [i.id for i in plan.rubric]
    return [ids, ids[::-1]]


def requests(material: Material, settings: Settings = Settings()) -> list[llm_pb2.GenerateRequest]:
    """The two runs' requests: same instructions and schema, different seed and criterion order."""
    schema = json.dumps(response_schema(material.plan), sort_keys=True)
    out = []
    for n, (seed, order) in enumerate(zip(settings.seeds, criteria_orders(material.plan))):
        out.append(llm_pb2.GenerateRequest(
            request_id=f"eval-{material.interview.id}-{n + 1}-{uuid.uuid4().hex[:8]}",
            persona=common_pb2.PERSONA_EVALUATOR, task=llm_pb2.TASK_EVALUATE,
            interview_id=material.interview.id, document=build(material, order), response_schema_json=schema,
            options=llm_pb2.GenerationOptions(seed=seed, timeout_ms=settings.timeout_ms, temperature=0.2,
                                              max_output_tokens=settings.max_output_tokens,
                                              provider=settings.provider)))
    return out


def parse_run(text: str, plan: common_pb2.Plan) -> dict:
    """One run's answer, validated against the schema; raises EvaluationFailed or NotAssessed."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EvaluationFailed(f"the evaluator's answer is not JSON ({exc.msg} at character {exc.pos})") from None
    if isinstance(data, dict) and contract.NOT_ASSESSED_KEY in data:
        raise NotAssessed(str(data[contract.NOT_ASSESSED_KEY])[:500])
    try:
        jsonschema.validate(data, contract.standard_schema(response_schema(plan)))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        raise EvaluationFailed(f"the evaluator's answer does not follow the schema at {where}: {exc.message[:200]}") from None
    return data


@dataclass
class _RunCriterion:
    score: int | None
    justification: str
    evidence: list[interviews_pb2.Evidence]
    removed: int


def _check_run(data: dict, material: Material, settings: Settings) -> tuple[dict[str, _RunCriterion], int]:
    """Per criterion: the run's score (None without verified evidence), verified evidence; and how
    many justification sentences the fairness check dropped."""
    out: dict[str, _RunCriterion] = {}
    dropped = 0
    items = {i.id: i for i in material.plan.rubric}
    for c in data["criteria"]:
        cid = c["rubric_item_id"]
        if cid in out or cid not in items:
            continue  # the first assessment of a criterion counts
        checked = verify(c.get("evidence", []), material, settings.low_stt_confidence)
        justification, n = fairness.clean_justification(str(c.get("justification", "")))
        dropped += n
        lo, hi = scale(items[cid])
        score = c.get("score")
        if score is not None and not lo <= score <= hi:
            score = None
        if not checked.evidence:
            score = None  # never scored on air
        out[cid] = _RunCriterion(score, justification, checked.evidence, checked.removed)
    return out, dropped


def _merge_evidence(a: list[interviews_pb2.Evidence], b: list[interviews_pb2.Evidence]) -> list[interviews_pb2.Evidence]:
    seen, out = set(), []
    for ev in a + b:
        key = ev.SerializeToString(deterministic=True)
        if key not in seen:
            seen.add(key)
            out.append(ev)
    return out


def combine(runs: list[dict[str, _RunCriterion]], material: Material,
            settings: Settings) -> tuple[list[interviews_pb2.CriterionAssessment], float]:
    """Calibrate the runs into one assessment per criterion, and compute the overall confidence."""
    assessments, parts = [], []
    for item in material.plan.rubric:
        lo, hi = scale(item)
        per = [r.get(item.id) for r in runs]
        scores = [p.score if p else None for p in per]
        evidence: list[interviews_pb2.Evidence] = []
        for p in per:
            if p:
                evidence = _merge_evidence(evidence, p.evidence)
        removed = sum(p.removed for p in per if p)
        ca = interviews_pb2.CriterionAssessment(rubric_item_id=item.id, run_scores=[s or 0 for s in scores],
                                                evidence_removed=removed)
        given = [s for s in scores if s is not None]
        if not given:
            ca.status = INSUFFICIENT
            ca.justification = "No verified evidence in the interview for this criterion."
            ca.evidence.extend(evidence)  # may hold evidence from a run that did not score: shown, not scored
            assessments.append(ca)
            continue
        ca.status = SCORED
        ca.score = min(given) + (max(given) - min(given)) // 2  # the runs' mean; a split decision rounds down
        ca.needs_review = len(given) < len(scores) or (max(given) - min(given)) > settings.review_margin
        first = next(p for p, s in zip(per, scores) if s is not None)
        ca.justification = first.justification  # type: ignore[union-attr]
        ca.evidence.extend(evidence)
        assessments.append(ca)
        span = max(1, hi - lo)
        agreement = 1 - (max(given) - min(given)) / span if len(given) == len(scores) else 0.5
        transcript = [e for e in evidence if e.WhichOneof("ref") == "transcript_sequence"]
        clear = 1 - (sum(e.low_stt_confidence for e in transcript) / len(transcript)) if transcript else 1.0
        support = min(1.0, len(evidence) / 2) * (len(evidence) / (len(evidence) + removed))
        parts.append(0.5 * agreement + 0.3 * support + 0.2 * clear)
    confidence = round(sum(parts) / len(material.plan.rubric), 2) if material.plan.rubric else 0.0
    return assessments, confidence


def _base(material: Material, kind: int) -> interviews_pb2.Evaluation:
    return interviews_pb2.Evaluation(
        interview_id=material.interview.id, evaluation_id=f"ev_{uuid.uuid4().hex[:16]}", kind=kind,
        status=interviews_pb2.EVALUATION_DONE, advisory=True, plan_version=material.plan.version,
        last_event_id=material.last_event_id, created_at=_timestamp_now())


def not_assessed(material: Material, reason: str) -> interviews_pb2.Evaluation:
    """A degenerate interview: no scores, the reason, every criterion NOT_ASSESSED."""
    ev = _base(material, interviews_pb2.EVALUATION_RUBRIC)
    ev.reason = reason
    ev.summary = f"Not assessed. {reason}"
    for item in material.plan.rubric:
        ev.criteria.add(rubric_item_id=item.id, status=NOT_ASSESSED)
        ev.scores.add(rubric_item_id=item.id, score=0)
    return ev


def metrics_report(material: Material, reason: str = "") -> interviews_pb2.Evaluation:
    """The offline report as an Evaluation: measurements, no scores."""
    m = im.compute(material.entries, material.plan, material.events)
    ev = _base(material, interviews_pb2.EVALUATION_METRICS_REPORT)
    ev.summary = im.NOT_A_JUDGEMENT
    ev.reason = reason
    ev.report_markdown = report.to_markdown(m, material)
    for item in material.plan.rubric:
        ev.criteria.add(rubric_item_id=item.id, status=NOT_ASSESSED)
    return ev


def coaching_summary(material: Material) -> interviews_pb2.Evaluation:
    """A COACH interview's end-of-practice summary: improvements tied to sequences, never a score."""
    m = im.compute(material.entries, material.plan, material.events)
    ev = _base(material, interviews_pb2.EVALUATION_COACHING_SUMMARY)
    top = coaching.summary(m)
    ev.concerns.extend(i.line() for i in top)
    notes = [e.coaching for e in material.events if e.WhichOneof("payload") == "coaching"]
    ev.summary = "Practice feedback from measurements of the conversation, not a score." + (
        f" {len(notes)} note{'s' if len(notes) > 1 else ''} given between answers." if notes else "")
    ev.report_markdown = coaching.summary_markdown(m, notes)
    return ev


async def evaluate(material: Material, generate: Generate, settings: Settings = Settings()) -> interviews_pb2.Evaluation:
    """The evaluation this interview gets: coaching summary (COACH), no scores (degenerate), the
    metrics report (provider declined), or the calibrated rubric assessment. Raises EvaluationFailed."""
    if material.interview.persona == common_pb2.PERSONA_COACH:
        return coaching_summary(material)
    reason = guards.degenerate_reason(material, settings.min_candidate_speech_s)
    if reason:
        return not_assessed(material, reason)
    if not material.plan.rubric:
        return metrics_report(material, "The plan has no rubric: only measurements are reported.")
    reqs = requests(material, settings)
    finals = await asyncio.gather(*(generate(r) for r in reqs))
    parsed = []
    for final in finals:
        if final.finish_reason == llm_pb2.FINISH_ERROR:
            raise EvaluationFailed(f"the evaluator failed: {_attempt_errors(final) or 'no answer'}")
        try:
            parsed.append(parse_run(final.text, material.plan))
        except NotAssessed as exc:
            return metrics_report(material, f"Not assessed by a model: {exc}")
    runs, dropped = [], 0
    for data in parsed:
        checked, n = _check_run(data, material, settings)
        runs.append(checked)
        dropped += n
    criteria, confidence = combine(runs, material, settings)
    ev = _base(material, interviews_pb2.EVALUATION_RUBRIC)
    ev.criteria.extend(criteria)
    for c in criteria:
        ev.scores.add(rubric_item_id=c.rubric_item_id, score=c.score if c.HasField("score") else 0,
                      evidence="; ".join(f"#{e.transcript_sequence}" if e.WhichOneof("ref") == "transcript_sequence"
                                         else (e.observation_id or e.code_event_id) for e in c.evidence))
    strengths, n1 = fairness.clean_list([str(s) for s in parsed[0]["strengths"]])
    concerns, n2 = fairness.clean_list([str(s) for s in parsed[0]["concerns"]])
    step, n3 = fairness.clean_justification(str(parsed[0]["recommended_next_step"]))
    dropped += n1 + n2 + n3
    ev.strengths.extend(strengths)
    ev.concerns.extend(concerns)
    ev.recommended_next_step = step
    ev.confidence = confidence
    ev.model = finals[0].provider + (f"/{reqs[0].options.model}" if reqs[0].options.model else "")
    ev.prompt_version = contract.PROMPT_VERSION
    ev.summary = _summary(criteria, dropped)
    return ev


def _attempt_errors(final: llm_pb2.GenerateFinal) -> str:
    return "; ".join(f"{a.provider}: {a.error}" for a in final.attempts if a.error)


def _summary(criteria: list[interviews_pb2.CriterionAssessment], dropped: int) -> str:
    scored = [c for c in criteria if c.status == SCORED]
    review = [c.rubric_item_id for c in criteria if c.needs_review]
    removed = sum(c.evidence_removed for c in criteria)
    parts = [f"Advisory: a person decides. {len(scored)} of {len(criteria)} criteria scored on verified evidence."]
    if review:
        parts.append(f"Flagged for human review (the independent runs disagreed): {', '.join(review)}.")
    if removed:
        parts.append(f"{removed} cited piece(s) of evidence could not be verified and were removed.")
    if dropped:
        parts.append(f"{dropped} statement(s) about traits that are not assessed (accent, appearance, emotions, "
                     "confidence, personality) were removed.")
    return " ".join(parts)
