"""Fixtures for the llm tests: a fake Gemini, and the real gRPC service in-process on loopback."""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from interview.v1 import common_pb2, llm_pb2, llm_pb2_grpc
from services.common import config
from services.common.server import ServiceRuntime
from services.llm.config import LlmConfig
from services.llm.service import build
from tests.fakes.gemini import API_KEY, FakeGemini
from tests.support.procs import free_port

Q = common_pb2.Question


def small_plan() -> common_pb2.Plan:
    """A plan with every kind of phase, two questions where it matters."""
    return common_pb2.Plan(
        name="test-backend", title="Backend engineer screen", role="backend engineer",
        coding_problem=common_pb2.CodingProblem(title="Two sum", statement="Given a list of numbers and a target, "
                                                "return the indices of two numbers that add up to the target.",
                                                examples=["[2, 7, 11, 15], 9 -> [0, 1]"]),
        phases=[
            common_pb2.Phase(id="intro", title="Introduction", kind=common_pb2.PHASE_INTRODUCTION, time_budget_s=180,
                             questions=[Q(id="intro-1", text="Could you tell me about your current role?",
                                          follow_ups=["What does a typical week look like for you?"])]),
            common_pb2.Phase(id="tech", title="Technical screening", kind=common_pb2.PHASE_TECHNICAL_SCREENING,
                             questions=[Q(id="tech-1", text="How does a hash map handle collisions?",
                                          follow_ups=["What happens to lookups when the load factor grows?"]),
                                        Q(id="tech-2", text="When would you choose a message queue over direct calls?")]),
            common_pb2.Phase(id="coding", title="Live coding", kind=common_pb2.PHASE_LIVE_CODING,
                             questions=[Q(id="code-1", text="Please solve two sum: return the indices of two numbers "
                                          "that add up to a target.", follow_ups=["A dictionary from value to index helps."])]),
            common_pb2.Phase(id="design", title="System design", kind=common_pb2.PHASE_SYSTEM_DESIGN,
                             questions=[Q(id="design-1", text="How would you design a URL shortener?")]),
            common_pb2.Phase(id="behavioral", title="Behavioral", kind=common_pb2.PHASE_BEHAVIORAL,
                             questions=[Q(id="beh-1", text="Tell me about a disagreement with a colleague and how you resolved it.")]),
            common_pb2.Phase(id="questions", title="Your questions", kind=common_pb2.PHASE_CANDIDATE_QUESTIONS),
            common_pb2.Phase(id="wrap-up", title="Wrap-up", kind=common_pb2.PHASE_WRAP_UP),
        ])


def msg(role: int, text: str) -> llm_pb2.ChatMessage:
    return llm_pb2.ChatMessage(role=role, text=text)


def user(text: str) -> llm_pb2.ChatMessage:
    return msg(common_pb2.ROLE_USER, text)


def agent(text: str) -> llm_pb2.ChatMessage:
    return msg(common_pb2.ROLE_AGENT, text)


def request(*history: llm_pb2.ChatMessage, task: int = llm_pb2.TASK_REPLY, phase_id: str = "intro",
            mode: int = common_pb2.MODE_UNSPECIFIED, **context: Any) -> llm_pb2.GenerateRequest:
    ctx = llm_pb2.InterviewContext(plan=small_plan(), phase_id=phase_id, mode=mode, phase_time_left_s=60, **context)
    return llm_pb2.GenerateRequest(request_id="r1", interview_id="i1", persona=common_pb2.PERSONA_INTERVIEWER,
                                   context=ctx, history=list(history), task=task)


async def collect(stream: Any) -> tuple[list[llm_pb2.GenerateResponse], llm_pb2.GenerateFinal]:
    responses = [r async for r in stream]
    assert responses and responses[-1].HasField("final"), "a stream must end with exactly one final"
    assert sum(r.HasField("final") for r in responses) == 1
    return responses, responses[-1].final


def deltas(responses: list[llm_pb2.GenerateResponse]) -> list[str]:
    return [r.delta.text for r in responses if r.HasField("delta")]


class LlmServer:
    """The real servicer on a real grpc.aio server (health, admission, interceptors)."""

    def __init__(self, env: dict[str, str]):
        self.cfg = config.load(LlmConfig, "llm", {"LLM_PORT": str(free_port()), **env})
        self.runtime = ServiceRuntime("llm", self.cfg.server)
        self.channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> "LlmServer":
        self.servicer = await build(self.cfg, self.runtime)
        self.chain = self.servicer.generation.chain
        await self.runtime.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.runtime.port}")
        self.stub = llm_pb2_grpc.LlmStub(self.channel)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.channel is not None
        await self.channel.close()
        await self.runtime.stop(0.5)


@pytest.fixture
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    async with FakeGemini() as fake:
        yield fake


@pytest.fixture
def llm_server() -> Callable[..., Any]:
    """`async with llm_server(fake, LLM_FIRST_TOKEN_DEADLINE_MS="200") as srv:` (fake=None: scripted)."""

    @asynccontextmanager
    async def start(fake: FakeGemini | None = None, **env: str) -> AsyncIterator[LlmServer]:
        base = {"LLM_PROVIDERS": "scripted"}
        if fake is not None:
            base = {"LLM_PROVIDERS": "gemini,scripted", "GEMINI_API_KEY": API_KEY,
                    "LLM_GEMINI_BASE_URL": fake.base_url}
        async with LlmServer({**base, **env}) as srv:
            yield srv

    return start
