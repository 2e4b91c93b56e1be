"""Shared test material: the known-properties transcript as a finished interview with a rubric,
a code event with content and a video observation, and a scripted `generate` for the evaluator."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from google.protobuf import json_format

from interview.v1 import common_pb2, interviews_pb2, llm_pb2, session_pb2
from services.orchestrator.evaluation.material import Material

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts" / "known_properties.json"
IID = "iv_0123456789abcdef0123"


def plan() -> common_pb2.Plan:
    p = common_pb2.Plan(name="backend-engineer", title="Backend engineer", role="Backend engineer", version="7")
    p.phases.add(id="intro", title="Introduction", time_budget_s=180, kind=common_pb2.PHASE_INTRODUCTION)
    p.phases.add(id="coding", title="Live coding", time_budget_s=600, kind=common_pb2.PHASE_LIVE_CODING)
    p.rubric.add(id="fundamentals", description="Sound understanding of caching, consistency and idempotency",
                 weight=2)
    p.rubric.add(id="design", description="Sensible architecture with explicit trade-offs")
    p.rubric.add(id="coding", description="Working, readable code", keywords=["dict", "two sum"])
    return p


def interview(persona: int = common_pb2.PERSONA_INTERVIEWER, end_reason: str = "completed") -> interviews_pb2.Interview:
    iv = interviews_pb2.Interview(id=IID, status=session_pb2.INTERVIEW_ENDED, plan=plan(), role="Backend engineer",
                                  persona=persona, end_reason=end_reason, phase_id="coding")
    iv.started_at.FromJsonString("2026-12-01T10:00:00Z")
    iv.ended_at.FromJsonString("2026-12-01T10:06:40Z")
    return iv


def entries_and_events() -> tuple[list[interviews_pb2.TranscriptEntry], list[interviews_pb2.Event]]:
    data = json.loads(FIXTURE.read_text())
    entries = [json_format.ParseDict(e, interviews_pb2.TranscriptEntry()) for e in data["entries"]]
    events = [json_format.ParseDict(e, interviews_pb2.Event()) for e in data["events"]]
    events[2].code_event.code.language = "python"
    events[2].code_event.code.content = "def two_sum(nums, target):\n    seen = {}\n    for i, n in enumerate(nums):"
    events[2].code_event.code.output = "all 3 tests passed"
    obs = interviews_pb2.Event(event_id="3-5", interview_id=IID, observation=common_pb2.Observation(
        type="screen_text", detail="terminal shows pytest: all 3 tests passed", confidence=0.8,
        source=common_pb2.VIDEO_SOURCE_SCREEN))
    obs.time.FromJsonString("2026-12-01T10:04:52Z")
    obs.observation.time.CopyFrom(obs.time)
    return entries, events + [obs]


def material(persona: int = common_pb2.PERSONA_INTERVIEWER, end_reason: str = "completed",
             edit: Callable[[list[interviews_pb2.TranscriptEntry]], None] | None = None) -> Material:
    entries, events = entries_and_events()
    if edit:
        edit(entries)
    return Material.of(interview(persona, end_reason), entries, events)


def run(criteria: list[dict], strengths=("Explained the write-through cache",), concerns=(),
        step: str = "Proceed to a system design round") -> dict:
    return {"criteria": criteria, "strengths": list(strengths), "concerns": list(concerns),
            "recommended_next_step": step}


def criterion(cid: str, score: int | None, *evidence: tuple[str, str, str], justification: str = "Cited.") -> dict:
    return {"rubric_item_id": cid, "score": score, "justification": justification,
            "evidence": [{"source": s, "ref": r, "quote": q} for s, r, q in evidence]}


GOOD_FUNDAMENTALS = ("transcript", "2", "we used idempotency keys")
GOOD_CONSISTENCY = ("transcript", "4", "the consistency was eventual")
GOOD_CODE = ("code_event", "3-0", "all 3 tests passed")


class ScriptedGenerate:
    """Answers each evaluation run with the next prepared text; records the requests."""

    def __init__(self, *answers: dict | str, provider: str = "fake"):
        self.answers = list(answers)
        self.requests: list[llm_pb2.GenerateRequest] = []
        self.provider = provider

    async def __call__(self, req: llm_pb2.GenerateRequest) -> llm_pb2.GenerateFinal:
        self.requests.append(req)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return llm_pb2.GenerateFinal(text=text, finish_reason=llm_pb2.FINISH_STOP, provider=self.provider)
