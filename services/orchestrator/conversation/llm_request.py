"""Llm.Generate requests of a session: the interview context (plan, phase and its time left, mode,
questions asked, code, recent video observations, summary) plus the history, for a task. The summariser (TASK_SUMMARIZE)
is built here too and handed to the History, which decides when to use it."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from interview.v1 import common_pb2, llm_pb2
from services.orchestrator.conversation.history import History
from services.orchestrator.conversation.interview_view import InterviewView
from services.orchestrator.conversation.transcript import USER, Transcript

ANSWERS = (llm_pb2.TASK_REPLY, llm_pb2.TASK_WRAP_UP)  # tasks that answer the candidate's pending words
SUMMARY_TIMEOUT_S = 10


class LlmRequests:
    def __init__(self, view: InterviewView, history: History, transcript: Transcript, session_id: str):
        self.view, self.history, self.transcript, self.session_id = view, history, transcript, session_id
        self.observations: Callable[[], list[common_pb2.Observation]] = list  # recent video (Vision.recent)

    def generate(self, task: int, gid: str) -> llm_pb2.GenerateRequest:
        iv = self.view.interview
        ctx = llm_pb2.InterviewContext(plan=iv.plan, phase_id=iv.phase_id, phase_time_left_s=self.view.phase_time_left_s(),
                                       mode=iv.mode, candidate_name=iv.candidate.name, role=iv.role,
                                       summary=self.history.summary, asked_question_ids=sorted(self.transcript.asked))
        if self.view.code is not None:
            ctx.code.CopyFrom(self.view.code)
        ctx.observations.extend(self.observations())
        history = list(self.history.messages)
        pending = self.transcript.pending_user
        if task in ANSWERS and pending:
            history.append(self.transcript.chat(USER, " ".join(pending)))
        return llm_pb2.GenerateRequest(request_id=gid, persona=iv.persona, context=ctx, history=history, task=task,
                                       interview_id=iv.id)

    def summarizer(self, llm_stub: Any) -> Any:
        """The History's summarise function: (messages, previous summary) -> new summary."""
        async def summarize(messages: list[llm_pb2.ChatMessage], previous: str) -> str:
            req = self.generate(llm_pb2.TASK_SUMMARIZE, f"{self.session_id}-sum")
            req.context.summary = previous
            del req.history[:]
            req.history.extend(messages)
            text = ""
            async for resp in llm_stub.Generate(req, timeout=SUMMARY_TIMEOUT_S):
                if resp.WhichOneof("msg") == "final":
                    text = resp.final.text
            return text
        return summarize
