"""Any OpenAI-compatible model (OpenAI, vLLM, llama.cpp server, Ollama) through the official
openai SDK's Chat Completions streaming API.

Actions are tool calls: the neutral tools of services/llm/tools.py as `tools` of type function
(no_reply only in CODING mode). Tool calls are accepted as OpenAI streams them (an id and a name,
then the arguments in pieces, several calls side by side by `index`) and whole in one chunk (as
llama.cpp server and Ollama send them); an action is yielded once the stream has ended, when its
arguments are complete. Usage comes from the extra last chunk that `stream_options.include_usage`
asks for. The SDK's own retries are off (`max_retries=0`): the failover driver decides about
retries and fallback under a first-token deadline.

TASK_EVALUATE / TASK_COACH (document_tasks.py) get their own request: the prompt files' fixed
instructions as the system message, the document as data in one user message, no tools, the
request's seed and its own timeout, and the response schema as Structured Outputs
(`response_format` json_schema). Strict mode constrains decoding but accepts only a subset of
JSON Schema (every object closed with additionalProperties false and every property required; no
allOf/not/if/then/else, patternProperties, ...): a schema in that subset goes strict, any other
non-strict (the schema is then a hint the model is asked to follow). The answer is validated on
receipt and retried once by document_tasks.run either way, as for every provider.

Cancelling the generator (barge-in) unwinds into the SDK's stream, whose close releases the
httpx response with its body unread, which closes the HTTP connection at once.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionToolParam
from openai.types.chat.chat_completion_chunk import ChoiceDeltaToolCall

from interview.v1 import llm_pb2
from services.common import evaluation_contract as contract
from services.common.clock import Clock
from services.llm import document_tasks
from services.llm.config import OpenAISettings
from services.llm.prompting import PromptSet
from services.llm.providers.base import Delta, Done, Event, LlmProvider, ProviderError, Settings
from services.llm.tools import TOOLS, action_of

log = logging.getLogger("llm.openai")

OPENAI_URL = "https://api.openai.com/v1"
_ROLES = {"user": "user", "model": "assistant"}
OPENING = "(The interview has started.)"
_FINISH = {"stop": llm_pb2.FINISH_STOP, "tool_calls": llm_pb2.FINISH_STOP, "function_call": llm_pb2.FINISH_STOP,
           "length": llm_pb2.FINISH_MAX_TOKENS, "content_filter": llm_pb2.FINISH_SAFETY}


@functools.lru_cache(maxsize=8)
def tool_params(names: tuple[str, ...]) -> list[ChatCompletionToolParam]:
    """The neutral tools as Chat Completions `tools` (the one translation: their JSON schema goes
    as is). Built once per tool set; sharing is safe, the SDK copies what it sends."""
    return [{"type": "function", "function": {"name": TOOLS[n].name, "description": TOOLS[n].description,
                                              "parameters": TOOLS[n].parameters}} for n in names]


# Keywords Structured Outputs' strict mode refuses; a schema using any of them goes non-strict.
STRICT_UNSUPPORTED = frozenset({
    "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "patternProperties",
    "unevaluatedProperties", "unevaluatedItems", "propertyNames", "minProperties", "maxProperties",
    "contains", "minContains", "maxContains", "uniqueItems", "oneOf"})
STRICT_MAX_DEPTH = 10  # nesting levels strict mode accepts


def strict_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """`schema` (standard JSON Schema) in the form strict mode accepts (every object closed with
    additionalProperties false), or None when it cannot be: an object root is required, every
    property must be required (an optional one would have to become required-and-nullable,
    which changes what the answer may be), and no keyword outside strict mode's subset."""
    if schema.get("type") != "object":
        return None

    def walk(node: Any, depth: int) -> Any:
        if not isinstance(node, dict):
            raise ValueError("not a schema")
        if depth > STRICT_MAX_DEPTH or STRICT_UNSUPPORTED & node.keys():
            raise ValueError("outside strict mode's subset")
        out = dict(node)
        types = node.get("type")
        if types == "object" or (isinstance(types, list) and "object" in types):
            props = node.get("properties")
            if not props or set(node.get("required", ())) != set(props) or node.get("additionalProperties", False):
                raise ValueError("an open or partly optional object")
            out["properties"] = {k: walk(v, depth + 1) for k, v in props.items()}
            out["additionalProperties"] = False
        if "items" in node:
            out["items"] = walk(node["items"], depth + 1)
        for key in ("anyOf", "prefixItems"):
            if key in node:
                out[key] = [walk(v, depth + 1) for v in node[key]]
        for key in ("$defs", "definitions"):
            if key in node:
                out[key] = {k: walk(v, depth + 1) for k, v in node[key].items()}
        return out

    try:
        return walk(schema, 1)
    except ValueError:
        return None


def response_format(req: llm_pb2.GenerateRequest) -> dict[str, Any] | None:
    """The document task's `response_format`: strict json_schema when the schema allows it, else
    non-strict json_schema; None (plain text) when the request has no schema."""
    if not req.response_schema_json:
        return None
    schema = contract.standard_schema(json.loads(req.response_schema_json))
    strict = strict_schema(schema)
    name = "evaluation" if req.task == llm_pb2.TASK_EVALUATE else "coaching"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": strict or schema, "strict": strict is not None}}


@functools.lru_cache(maxsize=4)
def _document_prompts(version: str) -> document_tasks.Prompts:
    return document_tasks.Prompts(version)


def _document_request(prompts: PromptSet, req: llm_pb2.GenerateRequest, settings: Settings,
                      token_field: str) -> dict[str, Any]:
    """TASK_EVALUATE / TASK_COACH: fixed instructions, the document as data, structured output,
    the request's seed and its own timeout (document_tasks.py says why)."""
    p = _document_prompts(prompts.version)
    body: dict[str, Any] = {
        "model": settings.model, "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "system", "content": p.system_instruction(req)},
                     {"role": "user", "content": p.contents(req)}],
        "temperature": settings.temperature, token_field: settings.max_output_tokens,
        "timeout": document_tasks.timeout_s(req)}
    if req.options.HasField("seed"):
        body["seed"] = req.options.seed
    if (fmt := response_format(req)) is not None:
        body["response_format"] = fmt
    return body


def chat_request(prompts: PromptSet, req: llm_pb2.GenerateRequest, settings: Settings, *,
                 token_field: str = "max_completion_tokens") -> dict[str, Any]:
    """The SDK's `chat.completions.create` arguments for one GenerateRequest (also used by tests
    and the benchmark). The prompts are the ones every provider renders: trusted text in the
    system message, untrusted text in delimited data sections of the user turns."""
    if document_tasks.is_document_task(req):
        return _document_request(prompts, req, settings, token_field)
    rendered = prompts.render(req)
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": rendered.system_instruction}]
    if rendered.contents and rendered.contents[0][0] == "model":
        # Many local chat templates (Mistral, Gemma) refuse a conversation that does not start
        # with a user turn; the rendered turns alternate after that.
        messages.append({"role": "user", "content": OPENING})
    messages += [{"role": _ROLES[role], "content": text} for role, text in rendered.contents]  # type: ignore[misc]
    body: dict[str, Any] = {"model": settings.model, "messages": messages, "stream": True,
                            "stream_options": {"include_usage": True}, "temperature": settings.temperature,
                            token_field: settings.max_output_tokens}
    if rendered.tools:
        body["tools"] = tool_params(rendered.tools)
    return body


@dataclass
class _Call:
    name: str = ""
    arguments: str = ""


def _add_fragments(calls: dict[int, _Call], fragments: Iterable[ChoiceDeltaToolCall]) -> None:
    """Fold tool-call deltas into whole calls by `index`: the name comes once, the arguments in
    any number of pieces (one piece = a server that sends each call whole)."""
    for frag in fragments:
        call = calls.setdefault(frag.index if frag.index is not None else len(calls), _Call())
        if frag.function is not None:
            call.name += frag.function.name or ""
            call.arguments += frag.function.arguments or ""


def _arguments(call: _Call) -> dict[str, Any]:
    try:
        args = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        args = None
    if not isinstance(args, dict):  # the call itself still says what to do; its details are lost
        log.warning("tool call arguments are not a JSON object", extra={"tool": call.name,
                                                                         "arguments": call.arguments[:200]})
        return {}
    return args


def _message(exc: openai.APIError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    return str(body.get("message") or exc.message)


_SAMPLE_CHUNK: dict[str, Any] = {
    "id": "warm-up", "object": "chat.completion.chunk", "created": 0, "model": "m",
    "choices": [{"index": 0, "finish_reason": "tool_calls", "delta": {
        "role": "assistant", "content": "x",
        "tool_calls": [{"index": 0, "id": "c", "type": "function", "function": {"name": "n", "arguments": "{}"}}]}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


def _warm_up(client: AsyncOpenAI) -> None:
    """Load now what the SDK would load on the first request, inside an interview's first turn and
    on the event loop (~0.1-0.5 s measured here): its chat resources, httpx's anyio backend, the
    chunk type's field conversions."""
    client.chat.completions  # noqa: B018  (a lazy attribute: reading it imports the resources)
    with contextlib.suppress(ImportError):
        importlib.import_module("anyio._backends._asyncio")
    ChatCompletionChunk.model_construct(**_SAMPLE_CHUNK)  # the SDK's own (lazily cached) field conversions


class OpenAIProvider(LlmProvider):
    name = "openai"

    def __init__(self, settings: OpenAISettings, *, prompts: PromptSet, clock: Clock | None = None,
                 timeout_s: float = 30.0):
        if not settings.api_key:
            raise ValueError("the openai provider needs OPENAI_API_KEY (a local server ignores it: any value)")
        # base_url always explicit: left out, the SDK would read OPENAI_BASE_URL from the process env
        self.client = AsyncOpenAI(api_key=settings.api_key, base_url=settings.base_url or OPENAI_URL,
                                  max_retries=0, timeout=timeout_s)
        _warm_up(self.client)
        self.prompts = prompts
        self.model = settings.model
        # OpenAI wants max_completion_tokens (its reasoning models refuse max_tokens); the field
        # every compatible server reads is max_tokens.
        self.token_field = "max_tokens" if settings.base_url else "max_completion_tokens"

    async def generate(self, request: llm_pb2.GenerateRequest, settings: Settings) -> AsyncIterator[Event]:
        body = chat_request(self.prompts, request, settings, token_field=self.token_field)
        calls: dict[int, _Call] = {}
        finish = llm_pb2.FINISH_STOP
        usage = None
        try:
            stream = await self.client.chat.completions.create(**body)
            async with stream:  # closes the HTTP response however the loop ends (cancel included)
                chunk: ChatCompletionChunk
                async for chunk in stream:
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        delta = choice.delta
                        if delta.content:  # the opening {"role": "assistant", "content": ""} is no token
                            yield Delta(delta.content)
                        if delta.tool_calls:
                            _add_fragments(calls, delta.tool_calls)
                        if choice.finish_reason:
                            finish = _FINISH.get(choice.finish_reason, llm_pb2.FINISH_STOP)
        except openai.APIStatusError as exc:
            # 4xx are not worth an immediate retry (429 included); 5xx may be a passing hiccup.
            raise ProviderError(f"openai HTTP {exc.status_code}: {_message(exc)}",
                                retryable=exc.status_code >= 500, status=exc.status_code) from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            detail = f"{type(cause).__name__}: {cause}" if cause else exc.message
            raise ProviderError(f"openai connection failed: {detail}") from exc
        except openai.APIError as exc:  # an error event inside the stream
            raise ProviderError(f"openai stream error: {_message(exc)}") from exc
        for index in sorted(calls):
            act = action_of(calls[index].name, _arguments(calls[index]))
            if act is not None:
                yield act
        yield Done(finish, input_tokens=usage.prompt_tokens if usage else 0,
                   output_tokens=usage.completion_tokens if usage else 0)

    async def close(self) -> None:
        await self.client.close()
