"""Bad input gets a clear status and message; the service keeps serving other streams."""
from __future__ import annotations

import asyncio

import grpc
import pytest

from interview.v1 import common_pb2, llm_pb2
from tests.llm.conftest import agent, collect, request, user


async def status_of(srv, req: llm_pb2.GenerateRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await collect(srv.stub.Generate(req))
    return err.value.code(), err.value.details()


def with_(req: llm_pb2.GenerateRequest, fn) -> llm_pb2.GenerateRequest:
    fn(req)
    return req


BAD = [
    ("empty history for a reply", lambda: request(), grpc.StatusCode.INVALID_ARGUMENT, "TASK_GREETING"),
    ("empty history for a resume", lambda: request(task=llm_pb2.TASK_RESUME), grpc.StatusCode.INVALID_ARGUMENT,
     "use TASK_GREETING"),
    ("only system notes for a resume", lambda: request(llm_pb2.ChatMessage(role=common_pb2.ROLE_SYSTEM, text="Phase: x."),
                                                       task=llm_pb2.TASK_RESUME),
     grpc.StatusCode.INVALID_ARGUMENT, "TASK_RESUME needs the conversation so far"),
    ("only agent turns for a reply", lambda: request(agent("Hello?")), grpc.StatusCode.INVALID_ARGUMENT, "ROLE_USER"),
    ("empty history to summarise", lambda: request(task=llm_pb2.TASK_SUMMARIZE), grpc.StatusCode.INVALID_ARGUMENT,
     "non-empty history"),
    ("unknown persona", lambda: with_(request(user("hi")), lambda r: setattr(r, "persona", 7)),
     grpc.StatusCode.INVALID_ARGUMENT, "unknown persona 7"),
    ("unknown task", lambda: request(user("hi"), task=42), grpc.StatusCode.INVALID_ARGUMENT, "unknown task 42"),
    ("unknown mode", lambda: request(user("hi"), mode=9), grpc.StatusCode.INVALID_ARGUMENT, "unknown mode"),
    ("history message without a role", lambda: request(user("hi"), llm_pb2.ChatMessage(text="?")),
     grpc.StatusCode.INVALID_ARGUMENT, "history[1]"),
    ("phase not in the plan", lambda: request(user("hi"), phase_id="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "'nope' is not a phase"),
    ("temperature out of range", lambda: with_(request(user("hi")), lambda r: setattr(r.options, "temperature", 3.5)),
     grpc.StatusCode.INVALID_ARGUMENT, "temperature"),
    ("unknown provider", lambda: with_(request(user("hi")), lambda r: setattr(r.options, "provider", "gpt")),
     grpc.StatusCode.INVALID_ARGUMENT, "'gpt' is not configured"),
    ("too many messages", lambda: request(*[user("yes") for _ in range(21)]), grpc.StatusCode.RESOURCE_EXHAUSTED,
     "21 messages, over the limit of 20; summarise"),
    ("too much text", lambda: request(user("x" * 2001)), grpc.StatusCode.RESOURCE_EXHAUSTED, "2001 characters"),
]


@pytest.mark.parametrize("case,make,code,words", BAD, ids=[b[0] for b in BAD])
async def test_bad_requests_get_a_clear_status(llm_server, case, make, code, words):
    async with llm_server(LLM_MAX_HISTORY_MESSAGES="20", LLM_MAX_HISTORY_CHARS="2000") as srv:
        got, details = await status_of(srv, make())
        assert got == code and words in details, details
        _, final = await collect(srv.stub.Generate(request(user("I build payment APIs in Go."))))  # still serving
        assert final.text


async def test_unspecified_persona_and_task_mean_interviewer_reply(llm_server):
    async with llm_server() as srv:
        req = request(agent("Could you tell me about your current role?"), user("I build APIs."))
        req.persona, req.task = common_pb2.PERSONA_UNSPECIFIED, llm_pb2.TASK_UNSPECIFIED
        _, final = await collect(srv.stub.Generate(req))
    assert final.text == "What does a typical week look like for you?"


async def test_a_caller_that_disconnects_mid_stream_does_not_disturb_others(llm_server):
    async with llm_server(LLM_SCRIPTED_DELTA_DELAY_MS="50") as srv:
        slow = srv.stub.Generate(request(task=llm_pb2.TASK_GREETING))
        assert (await slow.read()).HasField("delta")
        other = asyncio.create_task(collect(srv.stub.Generate(request(task=llm_pb2.TASK_GREETING))))
        slow.cancel()
        _, final = await other
        assert final.text.startswith("Hi, thanks for joining.")
        await asyncio.sleep(0.1)
        assert srv.runtime.admission.active == 0  # the cancelled stream was released
        leftover = [t for t in asyncio.all_tasks() if "generate" in repr(t.get_coro()).lower()]
        assert not leftover


async def test_at_capacity_new_streams_get_resource_exhausted(llm_server):
    async with llm_server(LLM_SCRIPTED_DELTA_DELAY_MS="100", LLM_MAX_STREAMS="1") as srv:
        busy = srv.stub.Generate(request(task=llm_pb2.TASK_GREETING))
        await busy.read()
        code, details = await status_of(srv, request(task=llm_pb2.TASK_GREETING))
        busy.cancel()
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "capacity" in details
