"""A small typed async client of the Interviews API for backend teams.

    async with InterviewsClient("127.0.0.1:50051", api_key) as c:
        created = await c.create(template="backend-engineer", candidate_name="Ada")
        await c.set_mode(created.interview.id, Mode.CODING)
        async for event in c.watch(created.interview.id):
            ...

`watch` reconnects by itself (resuming after the last event it delivered), so a dropped
connection or an orchestrator restart loses no event and repeats none.
"""
from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Mapping
from types import TracebackType

import grpc

from interview.v1 import common_pb2, interviews_pb2, interviews_pb2_grpc, session_pb2
from services.common.channels import UNARY_TIMEOUT_S, create_channel
from services.common.retry import Backoff


class Mode(enum.IntEnum):
    CONVERSATIONAL = common_pb2.MODE_CONVERSATIONAL
    CODING = common_pb2.MODE_CODING


class CodeKind(enum.IntEnum):
    EDIT = common_pb2.CODE_EVENT_EDIT
    RUN = common_pb2.CODE_EVENT_RUN
    SUBMIT = common_pb2.CODE_EVENT_SUBMIT


RESUMABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


class InterviewsClient:
    def __init__(self, target: str, api_key: str, *, timeout_s: float = UNARY_TIMEOUT_S,
                 channel: grpc.aio.Channel | None = None):
        self._channel = channel or create_channel(target)
        self._own_channel = channel is None
        self._stub = interviews_pb2_grpc.InterviewsStub(self._channel)
        self._metadata = (("authorization", f"Bearer {api_key}"),)
        self.timeout_s = timeout_s

    async def __aenter__(self) -> "InterviewsClient":
        return self

    async def __aexit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_channel:
            await self._channel.close()

    def _opts(self) -> dict[str, object]:
        return {"metadata": self._metadata, "timeout": self.timeout_s}

    async def create(self, *, template: str = "", plan: common_pb2.Plan | None = None, candidate_name: str = "",
                     candidate_email: str = "", external_id: str = "", role: str = "",
                     persona: int = common_pb2.PERSONA_INTERVIEWER, mode: Mode | None = None,
                     camera: bool = False, screen: bool = False, request_id: str = "",
                     labels: Mapping[str, str] | None = None, join_token_ttl_s: int = 0,
                     config: interviews_pb2.InterviewConfig | None = None) -> interviews_pb2.CreateInterviewResponse:
        request = interviews_pb2.CreateInterviewRequest(
            candidate=interviews_pb2.Candidate(name=candidate_name, email=candidate_email, external_id=external_id),
            role=role, persona=persona, request_id=request_id, labels=dict(labels or {}),
            join_token_ttl_s=join_token_ttl_s, config=config,
            video_policy=session_pb2.VideoPolicy(camera_allowed=camera, screen_allowed=screen))
        if plan is not None:
            request.plan.CopyFrom(plan)
        else:
            request.template = template
        if mode is not None:
            request.config.mode = mode
        return await self._stub.CreateInterview(request, **self._opts())

    async def get(self, interview_id: str) -> interviews_pb2.Interview:
        return await self._stub.GetInterview(interviews_pb2.GetInterviewRequest(interview_id=interview_id), **self._opts())

    async def list(self, *, status: int = 0, page_size: int = 0,
                   page_token: str = "") -> interviews_pb2.ListInterviewsResponse:
        return await self._stub.ListInterviews(interviews_pb2.ListInterviewsRequest(
            status=status, page_size=page_size, page_token=page_token), **self._opts())

    async def list_all(self, *, status: int = 0, page_size: int = 100) -> AsyncIterator[interviews_pb2.Interview]:
        token = ""
        while True:
            page = await self.list(status=status, page_size=page_size, page_token=token)
            for iv in page.interviews:
                yield iv
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def update_config(self, interview_id: str, *, mode: Mode | None = None, silence_timeout_s: int | None = None,
                            vad_params: common_pb2.VadParams | None = None,
                            turn_taking: interviews_pb2.TurnTakingConfig | None = None) -> interviews_pb2.Interview:
        request = interviews_pb2.UpdateConfigRequest(interview_id=interview_id, vad_params=vad_params,
                                                     turn_taking=turn_taking)
        if mode is not None:
            request.mode = mode
        if silence_timeout_s is not None:
            request.silence_timeout_s = silence_timeout_s
        return await self._stub.UpdateConfig(request, **self._opts())

    async def set_mode(self, interview_id: str, mode: Mode, silence_timeout_s: int | None = None) -> interviews_pb2.Interview:
        return await self.update_config(interview_id, mode=mode, silence_timeout_s=silence_timeout_s)

    async def set_phase(self, interview_id: str, phase_id: str) -> interviews_pb2.Interview:
        return await self._stub.SetPhase(interviews_pb2.SetPhaseRequest(interview_id=interview_id, phase_id=phase_id),
                                         **self._opts())

    async def post_code_event(self, interview_id: str, kind: CodeKind, *, content: str = "", diff: str = "",
                              language: str = "", output: str = "") -> interviews_pb2.PostCodeEventResponse:
        code = common_pb2.CodeSnapshot(kind=kind, content=content, diff=diff, language=language, output=output)
        return await self._stub.PostCodeEvent(interviews_pb2.PostCodeEventRequest(interview_id=interview_id, code=code),
                                              **self._opts())

    async def end(self, interview_id: str, reason: str = "") -> interviews_pb2.Interview:
        return await self._stub.EndInterview(interviews_pb2.EndInterviewRequest(interview_id=interview_id, reason=reason),
                                             **self._opts())

    async def reissue_link(self, interview_id: str, ttl_s: int = 0) -> interviews_pb2.ReissueJoinLinkResponse:
        return await self._stub.ReissueJoinLink(interviews_pb2.ReissueJoinLinkRequest(
            interview_id=interview_id, join_token_ttl_s=ttl_s), **self._opts())

    async def transcript(self, interview_id: str, *, page_size: int = 0) -> AsyncIterator[interviews_pb2.TranscriptEntry]:
        token = ""
        while True:
            page = await self._stub.GetTranscript(interviews_pb2.GetTranscriptRequest(
                interview_id=interview_id, page_size=page_size, page_token=token), **self._opts())
            for entry in page.entries:
                yield entry
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def delete(self, interview_id: str) -> int:
        reply = await self._stub.DeleteInterview(interviews_pb2.DeleteInterviewRequest(interview_id=interview_id),
                                                 **self._opts())
        return reply.keys_deleted

    async def evaluate(self, interview_id: str, *, force: bool = False,
                       timeout_s: float = 300.0) -> interviews_pb2.Evaluation:
        """The stored evaluation (or a new one: force, or none yet); evaluation can take minutes."""
        return await self._stub.Evaluate(interviews_pb2.EvaluateRequest(interview_id=interview_id, force=force),
                                         metadata=self._metadata, timeout=timeout_s)

    async def watch(self, interview_id: str = "", after_event_id: str = "", *,
                    reconnect: Backoff = Backoff(initial_s=0.2, cap_s=5.0, attempts=10)) -> AsyncIterator[interviews_pb2.Event]:
        """Events of one interview ("" = the global lifecycle stream) after `after_event_id`
        ("" = from the start, "$" = only new ones), reconnecting on transient errors."""
        position = after_event_id
        delays = reconnect.delays()
        while True:
            call = self._stub.WatchEvents(interviews_pb2.WatchEventsRequest(
                interview_id=interview_id, after_event_id=position), metadata=self._metadata)
            try:
                async for event in call:
                    delays = reconnect.delays()  # progress: reset the backoff
                    position = event.event_id
                    yield event
                return  # the server ended the stream (interview deleted)
            except grpc.aio.AioRpcError as exc:
                delay = next(delays, None)
                if exc.code() not in RESUMABLE or delay is None:
                    raise
                await asyncio.sleep(delay)
            finally:
                call.cancel()
