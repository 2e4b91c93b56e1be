"""The LLM's actions at the end of a turn: state changes go through the API code and come back on
the control stream, so a live session changes phase or ends by one path whoever asked."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any

from interview.v1 import interviews_pb2, llm_pb2
from services.orchestrator.conversation.interview_view import InterviewView
from services.orchestrator.conversation.transcript import Spawn

log = logging.getLogger("conversation.actions")


def apply_actions(actions: Sequence[llm_pb2.Action], view: InterviewView, api: Any, spawn: Spawn) -> bool:
    """Start the API calls the actions ask for (spawned under the names the session lets finish at
    its end); True when the interview ends after this turn."""
    ending = False
    for action in actions:
        if action.type == llm_pb2.ADVANCE_PHASE:
            target = action.target_phase_id or view.next_phase_id()
            if target:
                spawn(_quiet(api.set_phase(interviews_pb2.SetPhaseRequest(interview_id=view.iid, phase_id=target),
                                           reason="llm")), "advance-phase")
        elif action.type == llm_pb2.END_INTERVIEW:
            ending = True
            spawn(_quiet(api.end(interviews_pb2.EndInterviewRequest(interview_id=view.iid, reason="completed"))), "end")
    return ending


async def _quiet(aw: Awaitable[Any]) -> None:
    try:
        await aw
    except Exception as exc:  # e.g. ended meanwhile: nothing to do
        log.warning("state change refused", extra={"error": str(exc)[:200]})
