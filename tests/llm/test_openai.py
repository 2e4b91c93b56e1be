"""The OpenAI-compatible provider through the real openai SDK, pointed at the fake (or, with
OPENAI_API_KEY, at OpenAI), behind the real gRPC service: streaming with usage, tool calls in
fragments and whole, cancellation, failover to the next provider, configuration errors."""
from __future__ import annotations

import asyncio
import json
import os
import time

import pytest

from interview.v1 import common_pb2, llm_pb2
from services.common import config
from services.llm.config import LlmConfig, OpenAISettings
from services.llm.prompting import PromptSet
from services.llm.providers.base import Settings
from services.llm.providers.openai import OPENING, OpenAIProvider, chat_request
from services.llm.tools import TOOLS
from tests.fakes.gemini import API_KEY as GEMINI_KEY, FakeGemini
from tests.fakes.openai import API_KEY, FakeOpenAI, Reply, tool_call_deltas
from tests.llm.conftest import LlmServer, agent, collect, deltas, request, user
from tests.support.procs import free_port

LIVE = pytest.param("live", marks=pytest.mark.live("OPENAI_API_KEY"))


def env_for(fake: FakeOpenAI, chain: str = "openai,scripted", **more: str) -> dict[str, str]:
    return {"LLM_PROVIDERS": chain, "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url, **more}


def openai_only(**kw) -> llm_pb2.GenerateRequest:
    req = request(agent("Could you tell me about your current role?"),
                  user("I lead the payments team and we rebuilt settlement in Go."), **kw)
    req.options.provider = "openai"
    return req


@pytest.fixture(params=["fake", LIVE])
async def openai_env(request):
    """Service env for the fake server, or for OpenAI itself when the live key is set."""
    if request.param == "live":
        yield None, {"LLM_PROVIDERS": "openai,scripted", "OPENAI_API_KEY": os.environ["OPENAI_API_KEY"]}
        return
    async with FakeOpenAI() as fake:
        yield fake, env_for(fake)


@pytest.fixture
async def fake_openai():
    async with FakeOpenAI() as fake:
        yield fake


async def test_streaming_deltas_arrive_in_order_with_usage(openai_env):
    fake, env = openai_env
    if fake is not None:
        fake.script.append(Reply(chunks=["Thanks. ", "Payments at scale ", "is interesting. ", "What was hardest?"]))
    req = openai_only()
    async with LlmServer(env) as srv:
        responses, final = await collect(srv.stub.Generate(req))
    pieces = deltas(responses)
    assert final.provider == "openai" and final.text and "".join(pieces) == final.text
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0  # from the include_usage chunk
    assert final.finish_reason == llm_pb2.FINISH_STOP and final.time_to_first_token_ms >= 0
    if fake is None:
        return
    assert pieces == ["Thanks. ", "Payments at scale ", "is interesting. ", "What was hardest?"]
    body, headers = fake.requests[0], fake.headers[0]
    assert final.usage.input_tokens == len(json.dumps(body["messages"])) // 4
    assert body["model"] == "gpt-4o-mini" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == pytest.approx(0.6) and body["max_tokens"] == 400  # the field local servers read
    assert headers["Authorization"] == f"Bearer {API_KEY}" and headers.get("x-stainless-retry-count") == "0"
    # the same prompts every provider renders: trusted text in the system message only
    rendered = PromptSet("v1").render(req)
    assert body["messages"][0] == {"role": "system", "content": rendered.system_instruction}
    # a user turn first (local chat templates insist), then the rendered turns, alternating
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "user"]
    assert [m["content"] for m in body["messages"][1:]] == [OPENING] + [text for _, text in rendered.contents]
    assert body["tools"] == [{"type": "function", "function": {"name": n, "description": TOOLS[n].description,
                                                               "parameters": TOOLS[n].parameters}}
                             for n in ("advance_phase", "end_interview")]


def test_the_fake_splits_arguments_and_sends_parallel_calls_as_openai_does():
    calls = [("advance_phase", {"target_phase_id": "design", "reason": "goals met"}), ("end_interview", {})]
    fragments = tool_call_deltas(calls, whole=False, arg_pieces=3)
    first = [f["tool_calls"][0] for f in fragments if f["tool_calls"][0]["index"] == 0]
    assert first[0]["id"] and first[0]["function"] == {"name": "advance_phase", "arguments": ""}
    assert len(first) - 1 >= 3 and all("name" not in f["function"] and "id" not in f for f in first[1:])
    assert {f["tool_calls"][0]["index"] for f in fragments} == {0, 1}
    (whole,) = tool_call_deltas(calls, whole=True, arg_pieces=3)  # one chunk, both calls complete
    assert [(c["index"], c["function"]["name"]) for c in whole["tool_calls"]] == [(0, "advance_phase"), (1, "end_interview")]


@pytest.mark.parametrize("whole", [False, True], ids=["fragments", "whole-in-one-chunk"])
async def test_tool_calls_become_actions(fake_openai, whole):
    fake_openai.script.append(Reply(calls=[("no_reply", {"reason": "thinking aloud"})], whole_calls=whole))
    fake_openai.script.append(Reply(  # two parallel calls after the text, arguments in 5 pieces each
        chunks=["Good, let's move on to system design. ", "How would you shard it?"], whole_calls=whole,
        arg_pieces=5, calls=[("advance_phase", {"target_phase_id": "design", "reason": "goals met"}),
                             ("end_interview", {"reason": "plan finished"})]))
    async with LlmServer(env_for(fake_openai)) as srv:
        coding = request(agent("Now let's do some live coding."), user("so I loop over this"), phase_id="coding")
        _, quiet = await collect(srv.stub.Generate(coding))
        responses, move = await collect(srv.stub.Generate(request(agent("Hi"), user("done"), phase_id="tech")))
    assert quiet.provider == "openai" and quiet.text == "" and quiet.finish_reason == llm_pb2.FINISH_ACTION_ONLY
    assert [(a.type, a.reason) for a in quiet.actions] == [(llm_pb2.NO_REPLY, "thinking aloud")]
    assert [(a.type, a.target_phase_id, a.reason) for a in move.actions] == [
        (llm_pb2.ADVANCE_PHASE, "design", "goals met"), (llm_pb2.END_INTERVIEW, "", "plan finished")]
    assert move.text == "".join(deltas(responses)) == "Good, let's move on to system design. How would you shard it?"
    assert move.finish_reason == llm_pb2.FINISH_STOP
    # no_reply is offered only in CODING mode
    tools = [[t["function"]["name"] for t in r["tools"]] for r in fake_openai.requests]
    assert tools == [["no_reply", "advance_phase", "end_interview"], ["advance_phase", "end_interview"]]


async def test_cancellation_closes_the_upstream_request_within_50ms(openai_env):
    fake, env = openai_env
    if fake is not None:
        fake.chunk_delay_s = 0.2
        fake.script.append(Reply(chunks=[f"word{i} " for i in range(50)]))
    async with LlmServer(env) as srv:
        call = srv.stub.Generate(openai_only())
        first = await call.read()
        assert first.HasField("delta")
        t_cancel = time.monotonic()
        call.cancel()
        if fake is not None:
            seen = await fake.wait_disconnect(1.0)
            print(f"upstream closed {1000 * (seen - t_cancel):.2f} ms after cancel")
            assert (seen - t_cancel) * 1000 < 50, f"upstream closed {1000 * (seen - t_cancel):.1f} ms after cancel"
            await asyncio.sleep(0.3)
            assert fake.completed == 0
        with pytest.raises(asyncio.CancelledError):
            await call.read()
        _, final = await collect(srv.stub.Generate(openai_only()))  # the service keeps serving
        assert final.provider == "openai" and final.text


@pytest.mark.parametrize("status,tries", [(503, 2), (429, 1)])
async def test_http_errors_fall_back_to_the_next_provider_in_the_chain(fake_openai, status, tries):
    fake_openai.script = [Reply(status=status), Reply(status=status)]
    async with FakeGemini() as gemini:
        env = env_for(fake_openai, "openai,gemini,scripted", GEMINI_API_KEY=GEMINI_KEY,
                      LLM_GEMINI_BASE_URL=gemini.base_url)
        async with LlmServer(env) as srv:
            ask = request(agent("Hi"), user("I build APIs and services for payments."))
            responses, first = await collect(srv.stub.Generate(ask))
            _, second = await collect(srv.stub.Generate(ask))
    assert len(fake_openai.requests) == tries  # 5xx retried once at once, 429 not; then skipped while open
    assert first.provider == "gemini" and first.text == "Thanks, that helps. What would you try next?"
    assert f"openai HTTP {status}: fake openai error {status}" == first.attempts[0].error
    assert [(a.provider, a.breaker_state) for a in first.attempts] == [("openai", "open"), ("gemini", "closed")]
    events = [r.provider_event for r in responses if r.HasField("provider_event")]
    assert [(e.kind, e.provider, e.from_provider) for e in events] == [
        (common_pb2.ProviderEvent.BREAKER_OPEN, "", "openai"),
        (common_pb2.ProviderEvent.FALLBACK, "gemini", "openai")]
    assert second.provider == "gemini"
    assert [(a.provider, a.error) for a in second.attempts] == [("openai", "skipped: breaker open"), ("gemini", "")]


async def test_a_wrong_key_is_reported_and_not_retried(fake_openai):
    env = {**env_for(fake_openai), "OPENAI_API_KEY": "sk-wrong"}
    async with LlmServer(env) as srv:
        _, final = await collect(srv.stub.Generate(request(agent("Hi"), user("I build APIs."))))
    assert final.provider == "scripted" and len(fake_openai.requests) == 0  # refused before the body was read
    assert final.attempts[0].error == "openai HTTP 401: Incorrect API key provided."


async def test_unreachable_server_falls_back_at_once():
    env = {"LLM_PROVIDERS": "openai,scripted", "OPENAI_API_KEY": API_KEY,
           "OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1"}
    async with LlmServer(env) as srv:
        t0 = time.monotonic()
        _, final = await collect(srv.stub.Generate(request(agent("Hi"), user("I build APIs."))))
    assert final.provider == "scripted" and time.monotonic() - t0 < 1.0  # max_retries=0: no SDK back-off
    assert final.attempts[0].error.startswith("openai connection failed: ")


async def test_a_server_dropping_mid_answer_ends_it_with_error_and_no_second_answer(fake_openai):
    fake_openai.script.append(Reply(chunks=["Thanks for that. ", "Now tell ", "me more."], drop_after=1))
    async with LlmServer(env_for(fake_openai)) as srv:
        responses, final = await collect(srv.stub.Generate(request(agent("Hi"), user("I build APIs."))))
    assert deltas(responses) == ["Thanks for that. "] and final.text == "Thanks for that. "
    assert final.provider == "openai" and final.finish_reason == llm_pb2.FINISH_ERROR
    assert final.attempts[-1].error.startswith("openai connection failed") and len(final.attempts) == 1


async def test_request_model_and_openai_token_field(fake_openai):
    """A request's model wins over LLM_OPENAI_MODEL; OpenAI itself gets max_completion_tokens."""
    async with LlmServer(env_for(fake_openai, LLM_OPENAI_MODEL="llama3.2")) as srv:
        await collect(srv.stub.Generate(openai_only()))
        forced = openai_only()
        forced.options.model = "qwen2.5:7b"
        await collect(srv.stub.Generate(forced))
    assert [r["model"] for r in fake_openai.requests] == ["llama3.2", "qwen2.5:7b"]
    cloud = OpenAIProvider(OpenAISettings(api_key="sk-x"), prompts=PromptSet("v1"))
    try:
        assert str(cloud.client.base_url) == "https://api.openai.com/v1/" and cloud.client.max_retries == 0
        body = chat_request(cloud.prompts, openai_only(), Settings("gpt-4o-mini", 0.6, 400), token_field=cloud.token_field)
        assert body["max_completion_tokens"] == 400 and "max_tokens" not in body
        greeting = chat_request(cloud.prompts, request(task=llm_pb2.TASK_GREETING), Settings("m", 0.6, 400))
        assert [m["role"] for m in greeting["messages"]] == ["system", "user"] and "tools" not in greeting
        assert OPENING not in greeting["messages"][1]["content"]
    finally:
        await cloud.close()


def test_bad_configuration_is_one_clear_error():
    with pytest.raises(config.ConfigError) as err:
        config.load(LlmConfig, "llm", {"LLM_PROVIDERS": "openai,scripted", "OPENAI_BASE_URL": "localhost:11434"})
    assert err.value.problems == [
        "OPENAI_BASE_URL: cannot parse 'localhost:11434' as str: expected an http(s) URL such as "
        "http://localhost:11434/v1"]
    with pytest.raises(config.ConfigError) as err:
        config.load(LlmConfig, "llm", {"LLM_PROVIDERS": "openai,scripted", "OPENAI_BASE_URL": "http://localhost:11434/v1"})
    assert err.value.problems == ["LLM_PROVIDERS includes openai but OPENAI_API_KEY is not set"]
    with pytest.raises(config.ConfigError) as err:
        config.load(LlmConfig, "llm", {"LLM_PROVIDERS": "openia"})
    assert "unknown provider(s) openia; known: gemini, openai, scripted" in str(err.value)


def test_malformed_tool_arguments_keep_the_action_and_drop_its_details():
    """Unit edge case (a model's broken JSON): the call still names the action."""
    from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

    from services.llm.providers.openai import _add_fragments, _arguments
    from services.llm.tools import action_of

    calls: dict = {}
    _add_fragments(calls, [ChoiceDeltaToolCall.model_validate(
        {"index": 0, "id": "c0", "type": "function", "function": {"name": "end_interview", "arguments": '{"reas'}})])
    _add_fragments(calls, [ChoiceDeltaToolCall.model_validate({"index": 0, "function": {"arguments": 'on": "do'}})])
    assert calls[0].name == "end_interview" and _arguments(calls[0]) == {}
    assert action_of(calls[0].name, _arguments(calls[0])).type == llm_pb2.END_INTERVIEW


def test_the_sdk_loads_at_start_up_not_in_the_first_turn():
    """Building the provider imports what the SDK would otherwise import inside the first
    request, on the event loop (~0.1-0.5 s measured)."""
    import subprocess
    import sys

    from tests.support.procs import ROOT

    code = ("import sys; from services.llm.config import OpenAISettings; from services.llm.prompting import PromptSet;"
            "from services.llm.providers.openai import OpenAIProvider;"
            "lazy = ['openai.resources.chat', 'anyio._backends._asyncio'];"
            "before = [m for m in lazy if m in sys.modules];"
            "OpenAIProvider(OpenAISettings(api_key='k'), prompts=PromptSet('v1'));"
            "print(before, [m for m in lazy if m not in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[] []"  # none loaded by the import, all loaded by the constructor


COACH_SCHEMA = {"type": "object", "properties": {"tips": {"type": "array", "items": {"type": "string"}},
                                                 "note": {"type": "string"}}, "required": ["tips"]}


async def test_a_schema_strict_mode_refuses_goes_non_strict_and_is_still_validated(fake_openai):
    """An optional property is outside strict mode's subset (the fake refuses it strict, as OpenAI
    does): the request goes non-strict, and the answer is still checked against the schema."""
    from openai import AsyncOpenAI, BadRequestError

    from services.llm.providers.openai import response_format, strict_schema

    assert strict_schema(COACH_SCHEMA) is None
    assert strict_schema({**COACH_SCHEMA, "required": ["tips", "note"]})["additionalProperties"] is False
    client = AsyncOpenAI(api_key=API_KEY, base_url=fake_openai.base_url, max_retries=0)
    with pytest.raises(BadRequestError, match="'required' is required to be supplied"):
        await client.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "x"}],
                                             response_format={"type": "json_schema", "json_schema": {
                                                 "name": "coaching", "schema": {**COACH_SCHEMA, "additionalProperties": False},
                                                 "strict": True}})
    await client.close()
    req = llm_pb2.GenerateRequest(persona=common_pb2.PERSONA_COACH, task=llm_pb2.TASK_COACH,
                                  document='{"feedback": ["That answer ran 3:00."]}',
                                  response_schema_json=json.dumps(COACH_SCHEMA))
    req.options.provider, req.options.seed = "openai", 7
    assert response_format(req)["json_schema"]["strict"] is False
    fake_openai.script += [Reply(chunks=['{"tips": "not a list"}']), Reply(chunks=['{"tips": ["Pause ', 'instead."]}'])]
    async with LlmServer(env_for(fake_openai)) as srv:
        _, final = await collect(srv.stub.Generate(req))
    assert json.loads(final.text) == {"tips": ["Pause instead."]} and final.provider == "openai"
    first = fake_openai.requests[1]  # [0] was the refused strict request above
    assert first["response_format"]["json_schema"] == {"name": "coaching", "schema": COACH_SCHEMA, "strict": False}
    assert first["seed"] == 7 and "tools" not in first and len(fake_openai.requests) == 3  # one retry
