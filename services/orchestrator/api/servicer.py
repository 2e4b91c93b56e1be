"""gRPC glue of the Interviews API: authentication and error mapping in one place (`api_call`),
then each method delegates to InterviewsApi."""
from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, NoReturn

import grpc
import redis.exceptions

from interview.v1 import interviews_pb2, interviews_pb2_grpc
from services.common import logs
from services.common.errors import ResourceExhausted, ServiceError
from services.common.ratelimit import RateLimiter
from services.orchestrator.api import validation
from services.orchestrator.api.auth import ApiKey, Authenticator
from services.orchestrator.api.interviews import InterviewsApi
from services.orchestrator.evaluation.jobs import EvaluationJobs, NotEnded

log = logging.getLogger("api")

WATCH = "WatchEvents"


class RateLimited(ResourceExhausted):
    """An API key over its rate: the caller should wait `retry_after` seconds (trailing metadata)."""

    def __init__(self, message: str, retry_after: str):
        super().__init__(message)
        self.retry_after = retry_after


class ApiLimits:
    """Per-API-key token buckets: one for unary calls, one for opening WatchEvents streams (a
    stream is long-lived and reconnects are normal, so it neither spends nor is refused by the
    calls' bucket)."""

    def __init__(self, calls: RateLimiter, watches: RateLimiter):
        self.calls, self.watches = calls, watches

    def check(self, key_name: str, method: str) -> None:
        limiter = self.watches if method == WATCH else self.calls
        wait = limiter.take(key_name)
        if wait:
            after = limiter.retry_after(wait)
            log.info("rate limited", extra={"caller": key_name, "method": method, "retry_after_s": after})
            what = "WatchEvents streams opened" if method == WATCH else "API calls"
            raise RateLimited(f"rate limit exceeded for API key {key_name!r}: at most {limiter.rate:g} {what} per "
                              f"second (bursts of {limiter.burst:g}); retry after {after} s", after)


_STORE_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError)


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, method: str) -> NoReturn:
    """Map an exception to a status and a message a person understands: a ServiceError (refused
    request, store refusal, bad credentials) carries its own status; Redis down is UNAVAILABLE."""
    if isinstance(exc, RateLimited):
        context.set_trailing_metadata((("retry-after", exc.retry_after),))
    if isinstance(exc, ServiceError):
        code, message = exc.code, exc.message
    elif isinstance(exc, _STORE_DOWN):
        log.warning("store unreachable", extra={"method": method, "error": str(exc)})
        code, message = grpc.StatusCode.UNAVAILABLE, "the interview store (Redis) is unreachable; safe to retry"
    else:
        log.exception("unexpected error", extra={"method": method})
        code, message = grpc.StatusCode.INTERNAL, f"internal error in {method}; see the orchestrator's logs"
    await context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


def api_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Authenticate, bind log context and map errors, for unary and server-streaming methods alike.
    The wrapped method receives the caller's API key (name, team) as a third argument."""
    method = fn.__name__

    def _caller(self: "InterviewsServicer", request: Any, context: grpc.aio.ServicerContext) -> ApiKey:
        caller = self.auth.check(context.invocation_metadata(), method)
        if self.limits is not None:
            self.limits.check(caller.name, method)
        return caller

    if getattr(fn, "__code__", None) and fn.__code__.co_flags & 0x200:  # async generator: server streaming
        @functools.wraps(fn)
        async def stream(self: "InterviewsServicer", request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                caller = _caller(self, request, context)
                with logs.bind(interview_id=getattr(request, "interview_id", ""), caller=caller.name, team=caller.team):
                    async for item in fn(self, request, context, caller):
                        yield item
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status
                await _abort(context, exc, method)
        return stream

    @functools.wraps(fn)
    async def unary(self: "InterviewsServicer", request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            caller = _caller(self, request, context)
            with logs.bind(interview_id=getattr(request, "interview_id", ""), caller=caller.name, team=caller.team):
                return await fn(self, request, context, caller)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to a status
            await _abort(context, exc, method)
    return unary


class InterviewsServicer(interviews_pb2_grpc.InterviewsServicer):
    def __init__(self, api: InterviewsApi, auth: Authenticator, watch_block_ms: int = 5000,
                 evaluations: EvaluationJobs | None = None, evaluate_wait_s: float = 240.0,
                 limits: ApiLimits | None = None):
        self.api = api
        self.auth = auth
        self.limits = limits
        self.watch_block_ms = watch_block_ms
        self.evaluations = evaluations
        self.evaluate_wait_s = evaluate_wait_s

    @api_call
    async def CreateInterview(self, request: interviews_pb2.CreateInterviewRequest, context: Any, caller: ApiKey
                              ) -> interviews_pb2.CreateInterviewResponse:
        response = await self.api.create(request, caller.name, caller.team)
        log.info("interview created", extra={"interview_id": response.interview.id, "template": response.interview.template})
        return response

    @api_call
    async def GetInterview(self, request: interviews_pb2.GetInterviewRequest, context: Any, caller: ApiKey
                           ) -> interviews_pb2.Interview:
        return (await self.api.get(request.interview_id, caller.team)).interview

    @api_call
    async def ListInterviews(self, request: interviews_pb2.ListInterviewsRequest, context: Any, caller: ApiKey
                             ) -> interviews_pb2.ListInterviewsResponse:
        return await self.api.list(request, caller.team)

    @api_call
    async def UpdateConfig(self, request: interviews_pb2.UpdateConfigRequest, context: Any, caller: ApiKey
                           ) -> interviews_pb2.Interview:
        return await self.api.update_config(request, caller.team)

    @api_call
    async def SetPhase(self, request: interviews_pb2.SetPhaseRequest, context: Any, caller: ApiKey
                       ) -> interviews_pb2.Interview:
        return await self.api.set_phase(request, team=caller.team)

    @api_call
    async def PostCodeEvent(self, request: interviews_pb2.PostCodeEventRequest, context: Any, caller: ApiKey
                            ) -> interviews_pb2.PostCodeEventResponse:
        return await self.api.post_code_event(request, caller.team)

    @api_call
    async def EndInterview(self, request: interviews_pb2.EndInterviewRequest, context: Any, caller: ApiKey
                           ) -> interviews_pb2.Interview:
        return await self.api.end(request, team=caller.team)

    @api_call
    async def GetTranscript(self, request: interviews_pb2.GetTranscriptRequest, context: Any, caller: ApiKey
                            ) -> interviews_pb2.GetTranscriptResponse:
        return await self.api.transcript(request, caller.team)

    @api_call
    async def DeleteInterview(self, request: interviews_pb2.DeleteInterviewRequest, context: Any, caller: ApiKey
                              ) -> interviews_pb2.DeleteInterviewResponse:
        n = await self.api.delete(request.interview_id, caller.team)
        log.info("interview deleted", extra={"keys_deleted": n})
        return interviews_pb2.DeleteInterviewResponse(keys_deleted=n)

    @api_call
    async def ReissueJoinLink(self, request: interviews_pb2.ReissueJoinLinkRequest, context: Any, caller: ApiKey
                              ) -> interviews_pb2.ReissueJoinLinkResponse:
        response = await self.api.reissue_link(request, caller.team)
        log.info("join link reissued: earlier links and session credentials revoked")
        return response

    @api_call
    async def Evaluate(self, request: interviews_pb2.EvaluateRequest, context: Any, caller: ApiKey
                       ) -> interviews_pb2.Evaluation:
        if self.evaluations is None:
            raise ServiceError("evaluation is not configured on this instance", code=grpc.StatusCode.UNIMPLEMENTED)
        iid = validation.interview_id(request.interview_id)
        await self.api.get(iid, caller.team)  # another team's interview is NOT_FOUND
        try:
            return await self.evaluations.evaluate_now(iid, force=request.force, wait_s=self.evaluate_wait_s)
        except NotEnded as exc:
            raise ServiceError(str(exc), code=grpc.StatusCode.FAILED_PRECONDITION) from None

    @api_call
    async def WatchEvents(self, request: interviews_pb2.WatchEventsRequest, context: Any, caller: ApiKey
                          ) -> AsyncIterator[interviews_pb2.Event]:
        """Every event after `after_event_id`, then new ones as they happen (XREAD BLOCK), until the
        caller cancels or the interview is deleted. Any instance can serve it: state is in Redis."""
        key, position = await self.api.watch_position(request, caller.team)
        while True:
            if request.interview_id:
                events = await self.api.store.read_events(key, position, block_ms=self.watch_block_ms)
                position = events[-1].event_id if events else position
            else:  # the global lifecycle stream: only the caller's team's interviews
                events, position = await self.api.store.read_lifecycle(position, caller.team,
                                                                       block_ms=self.watch_block_ms)
            for event in events:
                yield event
            if not events and request.interview_id and not await self.api.exists(request.interview_id):
                return  # deleted (or expired) while watching: nothing more will come
