"""The orchestrator's errors are services.common.errors types carrying their own status, and the
API's error mapping goes by type (a message that happens to mention "request_id" changes nothing)."""
from __future__ import annotations

import grpc
import pytest

from services.common.errors import ServiceError
from services.orchestrator import plans
from services.orchestrator.api.auth import AuthError
from services.orchestrator.api.servicer import _abort
from services.orchestrator.api.tokens import JoinTokens, TokenError, WrongInterview
from services.orchestrator.conversation.listener import SessionFailed
from services.orchestrator.store.store import Conflict, Fenced, LeaseHeld, NotFound, RequestReused, StoreError

S = grpc.StatusCode


@pytest.mark.parametrize(("error", "code"), [
    (StoreError("x"), S.FAILED_PRECONDITION), (NotFound("x"), S.NOT_FOUND), (Conflict("x"), S.ABORTED),
    (RequestReused("x"), S.ALREADY_EXISTS), (Fenced("x"), S.FAILED_PRECONDITION),
    (LeaseHeld("i-1"), S.FAILED_PRECONDITION), (AuthError("x"), S.UNAUTHENTICATED),
    (AuthError("x", code=S.PERMISSION_DENIED), S.PERMISSION_DENIED), (TokenError("x"), S.UNAUTHENTICATED),
    (WrongInterview("x"), S.PERMISSION_DENIED), (plans.PlanError("p.yaml", "phases[0].id", "bad"), S.INVALID_ARGUMENT),
    (SessionFailed("x"), S.INVALID_ARGUMENT),
])
def test_each_error_carries_its_status(error: ServiceError, code: grpc.StatusCode) -> None:
    assert isinstance(error, ServiceError) and error.code == code


def test_a_token_for_another_interview_is_permission_denied() -> None:
    tokens = JoinTokens(b"k" * 32)
    token, _ = tokens.issue("iv_a", 0.0, 60)
    with pytest.raises(WrongInterview, match="another interview") as info:
        tokens.verify(token, "iv_b", 1.0)
    assert info.value.code == S.PERMISSION_DENIED
    with pytest.raises(TokenError) as expired:
        tokens.verify(token, "iv_a", 100.0)
    assert expired.value.code == S.UNAUTHENTICATED and not isinstance(expired.value, WrongInterview)


def test_plan_error_names_the_field() -> None:
    error = plans.PlanError("p.yaml", "phases[2].kind", "not a kind")
    assert (error.field, error.problem, str(error)) == ("phases[2].kind", "not a kind", "p.yaml: phases[2].kind: not a kind")


class Context:
    async def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise grpc.aio.AbortError((code, message))


@pytest.mark.parametrize(("error", "code"), [
    (Conflict("interview iv_1 is changing too fast; retry (request_id)"), S.ABORTED),
    (RequestReused("request_id 'r' was already used"), S.ALREADY_EXISTS),
    (NotFound("interview iv_1 not found"), S.NOT_FOUND),
    (ServiceError("Evaluate arrives later", code=S.UNIMPLEMENTED), S.UNIMPLEMENTED),
    (RuntimeError("boom"), S.INTERNAL),
])
async def test_the_servicer_maps_by_type(error: Exception, code: grpc.StatusCode) -> None:
    with pytest.raises(grpc.aio.AbortError) as info:
        await _abort(Context(), error, "M")  # type: ignore[arg-type]
    got_code, message = info.value.args[0]
    assert got_code == code
    assert message == (error.message if isinstance(error, ServiceError) else "internal error in M; see the "
                       "orchestrator's logs")
