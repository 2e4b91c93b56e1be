"""The interview's action vocabulary, provider-neutral: what the model may do besides talk.

Each tool has a name, a description the model reads and JSON-schema parameters; each provider
translates these into its own tool format (Gemini function declarations, OpenAI `tools`), and
maps a call back to an `Act` with `action_of`. Which tools a request offers is the prompt's
decision (`Rendered.tools`: no_reply only in CODING mode).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from interview.v1 import llm_pb2
from services.llm.providers.base import Act


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]  # JSON schema of the arguments (an object)
    action: int  # llm_pb2.ActionType it becomes


_REASON = {"type": "string"}

TOOLS: dict[str, Tool] = {t.name: t for t in (
    Tool("no_reply",
         "Say nothing this turn: the candidate is thinking aloud during live coding, not talking to you.",
         {"type": "object", "properties": {"reason": _REASON}}, llm_pb2.NO_REPLY),
    Tool("advance_phase",
         "Move the interview to another phase because this phase's goals are met or its time is up.",
         {"type": "object", "properties": {
             "target_phase_id": {"type": "string", "description": "id of the phase to move to; empty for the next one"},
             "reason": _REASON}}, llm_pb2.ADVANCE_PHASE),
    Tool("end_interview",
         "End the interview after the closing words (the plan is finished).",
         {"type": "object", "properties": {"reason": _REASON}}, llm_pb2.END_INTERVIEW),
)}


def action_of(name: str, args: Mapping[str, Any] | None) -> Act | None:
    """The action a tool call asks for; None for a name we never offered."""
    tool = TOOLS.get(name)
    if tool is None:
        return None
    args = args or {}
    return Act(tool.action, str(args.get("target_phase_id", "") or ""), str(args.get("reason", "") or ""))
