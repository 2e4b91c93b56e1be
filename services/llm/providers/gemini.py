"""Gemini through google-genai's async streaming API.

Actions are function calls: the neutral tools of services/llm/tools.py translated into function
declarations (no_reply only in CODING mode).
Automatic function calling is off (we execute nothing; the orchestrator applies the actions) and
so are the SDK's own retries (its implicit retry sleeps 1-10 s on a refused connection): the
provider chain decides about retries and fallback under a first-token deadline.

Cancelling the generator (barge-in) unwinds into the SDK's stream, whose `finally` releases the
aiohttp response with its payload unread, which closes the HTTP connection at once.
"""
from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from google import genai
from google.genai import errors, types

from interview.v1 import llm_pb2
from services.common.clock import Clock
from services.llm import document_tasks
from services.llm.config import GeminiSettings
from services.llm.prompting import PromptSet
from services.llm.providers.base import Delta, Done, Event, LlmProvider, ProviderError, Settings
from services.llm.tools import TOOLS, Tool, action_of

log = logging.getLogger("llm.gemini")

def _schema(js: dict[str, Any]) -> types.Schema:
    """A JSON-schema dict of services/llm/tools.py as Gemini's Schema (the subset the tools use)."""
    props = js.get("properties")
    return types.Schema(type=types.Type(js["type"].upper()), description=js.get("description"),
                        properties={k: _schema(v) for k, v in props.items()} if props else None)


def _function(tool: Tool) -> types.FunctionDeclaration:
    return types.FunctionDeclaration(name=tool.name, description=tool.description,
                                     parameters=_schema(tool.parameters))


_FINISH = {
    "STOP": llm_pb2.FINISH_STOP, "MAX_TOKENS": llm_pb2.FINISH_MAX_TOKENS, "SAFETY": llm_pb2.FINISH_SAFETY,
    "RECITATION": llm_pb2.FINISH_SAFETY, "BLOCKLIST": llm_pb2.FINISH_SAFETY,
    "PROHIBITED_CONTENT": llm_pb2.FINISH_SAFETY, "SPII": llm_pb2.FINISH_SAFETY,
    "MALFORMED_FUNCTION_CALL": llm_pb2.FINISH_ERROR,
}


@functools.lru_cache(maxsize=8)
def _tools(names: tuple[str, ...]) -> list[types.Tool]:
    """Built once per tool set (the SDK copies the config it is given, so sharing is safe)."""
    return [types.Tool(function_declarations=[_function(TOOLS[n]) for n in names])]


def build_config(prompts: PromptSet, req: llm_pb2.GenerateRequest,
                 settings: Settings) -> tuple[types.GenerateContentConfig, list[types.Content]]:
    """The SDK request for one GenerateRequest (also used by tests and the benchmark)."""
    if document_tasks.is_document_task(req):
        return _document_config(prompts, req, settings)
    rendered = prompts.render(req)
    tools = _tools(rendered.tools) if rendered.tools else None
    config = types.GenerateContentConfig(
        system_instruction=rendered.system_instruction,
        temperature=settings.temperature,
        max_output_tokens=settings.max_output_tokens,
        tools=tools,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
    )
    contents = [types.Content(role=role, parts=[types.Part(text=text)]) for role, text in rendered.contents]
    return config, contents


@functools.lru_cache(maxsize=4)
def _document_prompts(version: str) -> document_tasks.Prompts:
    return document_tasks.Prompts(version)


def _document_config(prompts: PromptSet, req: llm_pb2.GenerateRequest,
                     settings: Settings) -> tuple[types.GenerateContentConfig, list[types.Content]]:
    """TASK_EVALUATE / TASK_COACH: fixed instructions, the document as data, structured output
    (the response schema) when one is given, the request's seed and its own timeout."""
    p = _document_prompts(prompts.version)
    config = types.GenerateContentConfig(
        system_instruction=p.system_instruction(req), temperature=settings.temperature,
        max_output_tokens=settings.max_output_tokens,
        seed=req.options.seed if req.options.HasField("seed") else None,
        response_mime_type="application/json" if req.response_schema_json else None,
        response_schema=json.loads(req.response_schema_json) if req.response_schema_json else None,
        http_options=types.HttpOptions(timeout=int(document_tasks.timeout_s(req) * 1000),
                                       retry_options=types.HttpRetryOptions(attempts=1)),
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    return config, [types.Content(role="user", parts=[types.Part(text=p.contents(req))])]


class GeminiProvider(LlmProvider):
    name = "gemini"

    def __init__(self, settings: GeminiSettings, *, prompts: PromptSet, clock: Clock | None = None,
                 timeout_s: float = 30.0):
        if not settings.api_key:
            raise ValueError("the gemini provider needs GEMINI_API_KEY")
        options: dict[str, Any] = {"timeout": int(timeout_s * 1000),
                                   "retry_options": types.HttpRetryOptions(attempts=1)}
        if settings.base_url:
            options["base_url"] = settings.base_url
        if settings.api_version:
            options["api_version"] = settings.api_version
        self.client = genai.Client(api_key=settings.api_key, http_options=types.HttpOptions(**options))
        self.prompts = prompts
        self.model = settings.model

    async def generate(self, request: llm_pb2.GenerateRequest, settings: Settings) -> AsyncIterator[Event]:
        config, contents = build_config(self.prompts, request, settings)
        finish = llm_pb2.FINISH_STOP
        usage: types.GenerateContentResponseUsageMetadata | None = None
        try:
            stream = await self.client.aio.models.generate_content_stream(
                model=settings.model, contents=contents, config=config)
            async for chunk in stream:
                usage = chunk.usage_metadata or usage
                for cand in chunk.candidates or []:
                    for part in (cand.content.parts if cand.content else None) or []:
                        if part.text and not part.thought:
                            yield Delta(part.text)
                        elif part.function_call and (act := action_of(part.function_call.name or "",
                                                                       part.function_call.args)):
                            yield act
                    if cand.finish_reason:
                        finish = _FINISH.get(str(cand.finish_reason.value), llm_pb2.FINISH_STOP)
        except errors.APIError as exc:
            # 4xx other than a server-side hiccup are not worth an immediate retry (429 included).
            raise ProviderError(f"gemini HTTP {exc.code}: {exc.message or exc.status}",
                                retryable=exc.code >= 500, status=exc.code) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ProviderError(f"gemini connection failed: {type(exc).__name__}: {exc}") from exc
        yield Done(finish,
                   input_tokens=(usage.prompt_token_count or 0) if usage else 0,
                   output_tokens=(usage.candidates_token_count or 0) if usage else 0)

    async def close(self) -> None:
        await self.client.aio.aclose()
