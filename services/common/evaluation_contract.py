"""What the orchestrator's evaluator and the LLM service's EVALUATOR agree on, in one place.

The orchestrator stores PROMPT_VERSION with every evaluation, so a stored result says which
instructions produced it; the LLM service renders that version's prompt files.
"""
from __future__ import annotations

PROMPT_VERSION = "evaluator-v1"  # services/llm/prompts/v1/evaluator.md + task_evaluate.md
# An offline provider that does not judge answers says so instead of inventing an assessment:
# {"not_assessed": "<why>"}; the orchestrator then stores the metrics report.
NOT_ASSESSED_KEY = "not_assessed"
# TASK_EVALUATE / TASK_COACH: the transcript travels in GenerateRequest.document (a 45-minute
# interview is ~60-90 k characters), so these limits replace the chat task's 30 s / 400 messages.
MAX_DOCUMENT_CHARS = 600_000
DEFAULT_TIMEOUT_MS = 180_000
MAX_TIMEOUT_MS = 600_000


def standard_schema(schema: dict) -> dict:
    """A response schema written for Gemini (OpenAPI-style `nullable`) as standard JSON Schema, for
    validating answers on receipt (both the LLM service and the orchestrator do)."""
    out = {k: (standard_schema(v) if isinstance(v, dict) else v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") and "type" in schema:
        out["type"] = [schema["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out
