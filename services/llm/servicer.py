"""Llm.Generate: validate the request, run it through the provider chain, stream the answer.

Validation errors are the caller's to fix and say exactly what was wrong; an exhausted chain is
UNAVAILABLE. A caller that cancels (barge-in) unwinds the generator chain down to the provider,
which closes its upstream request.
"""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from interview.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from services.common import logs, telemetry
from services.common.errors import InvalidArgument, NoProviderAnswered, ResourceExhausted, ServiceError
from services.llm import document_tasks
from services.llm import plan as planning
from services.llm.generation import Generation

log = logging.getLogger("llm.servicer")


@dataclass(frozen=True)
class Limits:
    max_history_messages: int
    max_history_chars: int


def validate(req: llm_pb2.GenerateRequest, limits: Limits, providers: list[str]) -> None:
    """Raise InvalidArgument / ResourceExhausted for a request no provider should see."""
    if req.persona not in common_pb2.Persona.values():
        raise InvalidArgument(f"unknown persona {req.persona}; use PERSONA_INTERVIEWER (1) or PERSONA_COACH (2)")
    if req.task not in llm_pb2.Task.values():
        raise InvalidArgument(f"unknown task {req.task}; known tasks: {', '.join(llm_pb2.Task.keys()[1:])}")
    if req.context.mode not in common_pb2.Mode.values():
        raise InvalidArgument(f"unknown mode {req.context.mode}; use MODE_CONVERSATIONAL or MODE_CODING")
    for i, m in enumerate(req.history):
        if m.role not in (common_pb2.ROLE_USER, common_pb2.ROLE_AGENT, common_pb2.ROLE_SYSTEM):
            raise InvalidArgument(f"history[{i}] has no valid role (ROLE_USER, ROLE_AGENT or ROLE_SYSTEM)")
    if len(req.history) > limits.max_history_messages:
        raise ResourceExhausted(f"history has {len(req.history)} messages, over the limit of {limits.max_history_messages}; "
                                "summarise older turns with TASK_SUMMARIZE and pass the summary in context.summary")
    chars = sum(len(m.text) for m in req.history)
    if chars > limits.max_history_chars:
        raise ResourceExhausted(f"history holds {chars} characters, over the limit of {limits.max_history_chars}; "
                                "summarise older turns with TASK_SUMMARIZE and pass the summary in context.summary")
    task = req.task or llm_pb2.TASK_REPLY
    has_user = any(m.role == common_pb2.ROLE_USER and m.text.strip() for m in req.history)
    has_talk = has_user or any(m.role == common_pb2.ROLE_AGENT and m.text.strip() for m in req.history)
    if task == llm_pb2.TASK_REPLY and not has_user:
        raise InvalidArgument("TASK_REPLY needs a history with at least one candidate (ROLE_USER) message; "
                              "to open the interview use TASK_GREETING")
    if task == llm_pb2.TASK_RESUME and not has_talk:
        raise InvalidArgument("TASK_RESUME needs the conversation so far in history (at least one ROLE_AGENT or "
                              "ROLE_USER message); with nothing said yet, use TASK_GREETING to open the interview")
    if task == llm_pb2.TASK_SUMMARIZE and not any(m.text.strip() for m in req.history):
        raise InvalidArgument("TASK_SUMMARIZE needs a non-empty history to summarise")
    ctx = req.context
    if ctx.phase_id and ctx.plan.phases and planning.find_phase(ctx.plan, ctx.phase_id) is None:
        raise InvalidArgument(f"context.phase_id {ctx.phase_id!r} is not a phase of the plan "
                              f"({', '.join(p.id for p in ctx.plan.phases)})")
    ids = [p.id for p in ctx.plan.phases]
    if len(set(ids)) != len(ids) or any(not i for i in ids):
        raise InvalidArgument("every phase of context.plan needs a unique, non-empty id")
    o = req.options
    if o.provider and o.provider not in providers:
        raise InvalidArgument(f"options.provider {o.provider!r} is not configured here; "
                              f"available: {', '.join(providers)} (or empty for the chain)")
    if o.HasField("temperature") and not 0.0 <= o.temperature <= 2.0:
        raise InvalidArgument(f"options.temperature {o.temperature} is outside 0..2")
    if o.max_output_tokens < 0 or o.first_token_deadline_ms < 0:
        raise InvalidArgument("options.max_output_tokens and options.first_token_deadline_ms must not be negative")


class LlmServicer(llm_pb2_grpc.LlmServicer):
    def __init__(self, generation: Generation, limits: Limits):
        self.generation = generation
        self.limits = limits

    async def Generate(self, request: llm_pb2.GenerateRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[llm_pb2.GenerateResponse]:
        with logs.bind(request_id=request.request_id, interview_id=request.interview_id):
            try:
                validate(request, self.limits, self.generation.chain.names)
                if document_tasks.is_document_task(request):
                    document_tasks.validate(request)
            except ServiceError as exc:
                await exc.abort(context)
            stream = (document_tasks.run(self.generation, request) if document_tasks.is_document_task(request)
                      else self.generation.run(request))
            with telemetry.child_span(request.trace, "llm.generate", task=llm_pb2.Task.Name(request.task)) as span:
                first = True
                try:
                    async for response in stream:
                        if first and response.WhichOneof("msg") == "delta":
                            first = False
                            span.add_event("first_token")
                        elif response.WhichOneof("msg") == "final":
                            span.set_attribute("provider", response.final.provider)
                        yield response
                except (document_tasks.DocumentTaskError, NoProviderAnswered) as exc:
                    await exc.abort(context)
                finally:
                    await stream.aclose()  # a cancelled caller: close the provider's request now
