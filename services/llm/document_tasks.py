"""TASK_EVALUATE and TASK_COACH: the model reads a document (a whole interview) instead of a chat.

Why a path of its own: a 45-minute transcript does not fit the chat tasks' limits (400 history
messages, 30 s per request, a 2.5 s first-token deadline tuned for voice), and its answer is
structured JSON that is only useful whole. So here:
- the transcript travels in `document` (up to contract.MAX_DOCUMENT_CHARS), the request's own
  `options.timeout_ms` bounds it (default contract.DEFAULT_TIMEOUT_MS, at most MAX_TIMEOUT_MS), and
  the first-token deadline is that timeout;
- the instructions come from prompt files only (prompts/<version>/evaluator.md, task_*.md); the
  document goes into the contents inside <interview_material>, delimiters neutralised, so nothing
  in a transcript can change them;
- a TASK_EVALUATE answer is validated against `response_schema_json` on receipt; an invalid one is
  asked for once more, then the call fails FAILED_PRECONDITION. Nothing is streamed before the
  answer is valid: the caller gets one whole answer or an error, never half of one.
The offline (scripted) provider does not judge: it answers {"not_assessed": why}; for TASK_COACH it
returns the feedback lines the orchestrator computed from the metrics.
"""
from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import jsonschema

from interview.v1 import common_pb2, llm_pb2
from services.common import evaluation_contract as contract
from services.common.errors import ServiceError
from services.llm.prompting import PROMPTS_DIR, neutralise

TASKS = (llm_pb2.TASK_EVALUATE, llm_pb2.TASK_COACH)
OFFLINE_REASON = ("the offline provider does not judge answers; the metrics report (measurements, not a judgement) "
                  "is stored instead")


class DocumentTaskError(ServiceError):
    """A document task refused or failed (bad request, invalid model output after the retry)."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message, code=code)


def is_document_task(req: llm_pb2.GenerateRequest) -> bool:
    return req.task in TASKS


def validate(req: llm_pb2.GenerateRequest) -> None:
    """Raise DocumentTaskError for a TASK_EVALUATE / TASK_COACH request no provider should see."""
    inv = grpc.StatusCode.INVALID_ARGUMENT
    name = llm_pb2.Task.Name(req.task)
    if not req.document.strip():
        raise DocumentTaskError(inv, f"{name} needs the material to read in `document` (the transcript and events)")
    if len(req.document) > contract.MAX_DOCUMENT_CHARS:
        raise DocumentTaskError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"document holds {len(req.document)} characters, over the limit of "
                                f"{contract.MAX_DOCUMENT_CHARS} for {name}")
    if req.task == llm_pb2.TASK_EVALUATE:
        if req.persona != common_pb2.PERSONA_EVALUATOR:
            raise DocumentTaskError(inv, "TASK_EVALUATE needs persona PERSONA_EVALUATOR (3)")
        if not req.response_schema_json:
            raise DocumentTaskError(inv, "TASK_EVALUATE needs response_schema_json (the JSON Schema of the answer)")
    if req.response_schema_json:
        try:
            schema = json.loads(req.response_schema_json)
            jsonschema.Draft202012Validator.check_schema(contract.standard_schema(schema))
        except (ValueError, jsonschema.SchemaError) as exc:
            raise DocumentTaskError(inv, f"response_schema_json is not a valid JSON Schema: {str(exc)[:200]}") from None
    t = req.options.timeout_ms
    if t < 0 or t > contract.MAX_TIMEOUT_MS:
        raise DocumentTaskError(inv, f"options.timeout_ms {t} is outside 0..{contract.MAX_TIMEOUT_MS}")


def timeout_s(req: llm_pb2.GenerateRequest) -> float:
    return (req.options.timeout_ms or contract.DEFAULT_TIMEOUT_MS) / 1000


class Prompts:
    """The EVALUATOR / COACH instructions of one prompt version (files read once)."""

    def __init__(self, version: str = "v1", root: Path = PROMPTS_DIR):
        folder = root / version
        self.evaluate = ((folder / "evaluator.md").read_text().strip() + "\n\n"
                         + (folder / "task_evaluate.md").read_text().strip())
        self.coach = (folder / "task_coach.md").read_text().strip()

    def system_instruction(self, req: llm_pb2.GenerateRequest) -> str:
        """Depends on the task only: never on the document."""
        return self.evaluate if req.task == llm_pb2.TASK_EVALUATE else self.coach

    @staticmethod
    def contents(req: llm_pb2.GenerateRequest) -> str:
        return "<interview_material>\n" + neutralise(req.document).replace(
            "</interview_material", "‹/interview_material") + "\n</interview_material>"


def scripted_answer(req: llm_pb2.GenerateRequest) -> str:
    """The offline provider's honest answer: no judgement for TASK_EVALUATE; for TASK_COACH the
    feedback lines computed in code (document JSON {"feedback": [...]}), or a plain note."""
    if req.task == llm_pb2.TASK_EVALUATE:
        return json.dumps({contract.NOT_ASSESSED_KEY: OFFLINE_REASON})
    try:
        lines = [str(x) for x in json.loads(req.document).get("feedback", [])]
    except (ValueError, AttributeError):
        lines = []
    return "\n".join(lines) or "No specific feedback from the measurements: keep going."


def check_answer(req: llm_pb2.GenerateRequest, text: str) -> str:
    """"" when the answer can be returned; else what is wrong with it (for the retry and the error)."""
    if req.task != llm_pb2.TASK_EVALUATE and not req.response_schema_json:
        return "" if text.strip() else "empty answer"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not JSON ({exc.msg} at character {exc.pos})"
    if isinstance(data, dict) and set(data) == {contract.NOT_ASSESSED_KEY}:
        return ""  # a provider that declines to judge says so; that is a valid answer
    try:
        jsonschema.validate(data, contract.standard_schema(json.loads(req.response_schema_json)))
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top)"
        return f"does not follow the response schema at {where}: {exc.message[:200]}"
    return ""


async def run(generation: object, req: llm_pb2.GenerateRequest) -> AsyncIterator[llm_pb2.GenerateResponse]:
    """Run a document task through the provider chain: collect the whole answer, check it, retry
    once if it is malformed, then yield it as one delta and the final. Raises DocumentTaskError."""
    prepared = llm_pb2.GenerateRequest()
    prepared.CopyFrom(req)
    prepared.options.first_token_deadline_ms = int(timeout_s(req) * 1000)
    problem = ""
    for attempt in (1, 2):
        events: list[llm_pb2.GenerateResponse] = []
        final: llm_pb2.GenerateFinal | None = None
        async for response in generation.run(prepared):  # type: ignore[attr-defined]
            if response.HasField("final"):
                final = response.final
            elif response.HasField("provider_event"):
                events.append(response)
        assert final is not None
        if final.finish_reason == llm_pb2.FINISH_ERROR:
            raise DocumentTaskError(grpc.StatusCode.UNAVAILABLE, "the language model failed mid-answer: "
                                    + ("; ".join(a.error for a in final.attempts if a.error) or "no detail"))
        problem = check_answer(req, final.text)
        if not problem:
            for e in events:
                yield e
            if final.text:
                yield llm_pb2.GenerateResponse(delta=llm_pb2.TextDelta(text=final.text))
            yield llm_pb2.GenerateResponse(final=final)
            return
    raise DocumentTaskError(grpc.StatusCode.FAILED_PRECONDITION,
                            f"the model's answer was malformed twice ({problem}); nothing was returned — retry later "
                            "or use another provider")
