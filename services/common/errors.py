"""One error type for every service: the gRPC status to answer with, a message a person
understands, and the offending field.

Raise `ServiceError` (or a subclass that fixes its `code`) wherever a request is refused or an
operation fails in a way the caller should see. Servicers turn it into a status with `abort`, or
into an in-band `Problem` (streams that keep going after bad input) with `problem`, so no handler
picks a status by reading exception text.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from interview.v1 import common_pb2


class ServiceError(Exception):
    """A refused request or failed operation, with the status and field a caller needs."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None, field: str = ""):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field

    def problem(self) -> common_pb2.Problem:
        """The in-band form, for streams that report bad input and carry on."""
        return common_pb2.Problem(code=self.code.value[0], message=self.message, field=self.field)

    async def abort(self, context: grpc.aio.ServicerContext) -> NoReturn:
        """End the call with this error's status and message."""
        await context.abort(self.code, self.message)
        raise AssertionError("unreachable")  # context.abort raises


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class ProviderError(Unavailable):
    """A provider could not answer (connection, error reply, timeout): the failover driver may
    retry it or fall back. `retryable`: a second try at once may succeed (5xx, a dropped
    connection); not for 4xx such as 429, where retrying at once only adds load. `status` is the
    provider's own (HTTP) status where it has one."""

    def __init__(self, message: str, *, retryable: bool = True, status: int = 0,
                 code: grpc.StatusCode | None = None):
        super().__init__(message, code=code)
        self.retryable = retryable
        self.status = status


class NoProviderAnswered(Unavailable):
    """Every provider of a chain failed."""


SETTLE_S = 0.25  # how long a refused stream's pending messages are read before its status goes out


async def settle(requests: AsyncIterator[Any], reading: "asyncio.Future[Any] | None" = None,
                 grace_s: float = SETTLE_S) -> None:
    """Before aborting a bidi stream on bad input, read (and drop) what the caller already sent,
    until it half-closes or `grace_s` passes. grpc's Python client reports a write that fails
    because the server already closed as INTERNAL ("Failed execute_batch"), hiding the real
    status; letting its in-flight writes land first makes the caller see ours."""
    try:
        async with asyncio.timeout(grace_s):
            if reading is not None:
                await reading
            async for _ in requests:
                pass
    except (TimeoutError, Exception):  # anything from a stream we are refusing anyway
        return


def invalid(field: str, what: str) -> InvalidArgument:
    """`field: what was wrong and what is accepted` as INVALID_ARGUMENT."""
    return InvalidArgument(f"{field}: {what}", field=field)


def problem(code: grpc.StatusCode, message: str, field: str = "") -> common_pb2.Problem:
    """An in-band Problem without raising (e.g. a frame refused while the stream goes on)."""
    return ServiceError(message, code=code, field=field).problem()
